package plans

import (
	"reflect"
	"testing"
	"time"
)

// fleet4 is lbBase with four hosts.
const fleet4 = head + "hosts:\n" +
	"  - {name: web1, address: 10.0.0.1, lb_server: web/web1}\n" +
	"  - {name: web2, address: 10.0.0.2, lb_server: web/web2}\n" +
	"  - {name: web3, address: 10.0.0.3, lb_server: web/web3}\n" +
	"  - {name: web4, address: 10.0.0.4, lb_server: web/web4}\n" + tail +
	"load_balancer: {haproxy: {address: 127.0.0.1:9999}}\n" // line 10

func TestParseCanary(t *testing.T) {
	for _, tc := range []struct {
		name    string
		src     string
		want    *Canary
		batches [][]string
	}{
		{name: "none", src: fleet4 + "strategy: {batch: 2}\n", batches: [][]string{{"web1", "web2"}, {"web3", "web4"}}},
		{name: "one host, default duration", src: fleet4 + "strategy: {batch: 2, canary: {hosts: 1, weight: 5%}}\n",
			want:    &Canary{Hosts: Size{N: 1}, Weight: 5, Duration: DefaultCanaryDuration},
			batches: [][]string{{"web1"}, {"web2", "web3"}, {"web4"}}},
		{name: "a percentage of hosts, a fractional weight", src: fleet4 + "strategy: {batch: 3, canary: {hosts: \"50%\", weight: \"2.5%\", duration: 90s}}\n",
			want:    &Canary{Hosts: Size{N: 50, Percent: true}, Weight: 2.5, Duration: 90 * time.Second},
			batches: [][]string{{"web1", "web2"}, {"web3", "web4"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			p, err := f.parse(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Strategy.Canary, tc.want) {
				t.Errorf("canary = %+v, want %+v", p.Strategy.Canary, tc.want)
			}
			var got [][]string
			for _, b := range p.Batches() {
				var names []string
				for _, h := range b {
					names = append(names, h.Name)
				}
				got = append(got, names)
			}
			if !reflect.DeepEqual(got, tc.batches) {
				t.Errorf("batches = %v, want %v", got, tc.batches)
			}
		})
	}
}

func TestParseCanaryInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
		files           map[string]string
	}{
		{name: "every host of the inventory", files: map[string]string{"hosts.yaml": "- {name: web1, address: 10.0.0.1, lb_server: web/web1}\n- {name: web2, address: 10.0.0.2, lb_server: web/web2}\n"},
			src:  head + "inventory: hosts.yaml\n" + tail + "load_balancer: {haproxy: {address: 127.0.0.1:9999}}\nstrategy: {canary: {hosts: 2, weight: 5%}}\n",
			want: `plan.yaml:7:28: strategy.canary.hosts: the canary must leave hosts on the old release to take the rest of the traffic, but 2 takes all 2`},
		{name: "unknown key", src: fleet4 + "strategy: {canary: {hosts: 1, weigth: 5%}}\n",
			want: lines(`plan.yaml:11:20: strategy.canary: missing required key "weight" (the canary's share of the traffic, e.g. "5%")`,
				`plan.yaml:11:31: strategy.canary.weigth: unknown key; did you mean "weight"?`)},
		{name: "weight without percent", src: fleet4 + "strategy: {canary: {hosts: 1, weight: 5}}\n",
			want: `plan.yaml:11:39: strategy.canary.weight: must be a share of the traffic above 0% and below 100%, like "5%", got 5`},
		{name: "weight of 100%", src: fleet4 + "strategy: {canary: {hosts: 1, weight: 100%}}\n",
			want: `plan.yaml:11:39: strategy.canary.weight: must be a share of the traffic above 0% and below 100%, like "5%", got "100%"`},
		{name: "every host", src: fleet4 + "strategy: {canary: {hosts: 100%, weight: 5%}}\n",
			want: `plan.yaml:11:28: strategy.canary.hosts: the canary must leave hosts on the old release to take the rest of the traffic, but 100% takes all 4`},
		{name: "zero hosts", src: fleet4 + "strategy: {canary: {hosts: 0, weight: 5%}}\n",
			want: `plan.yaml:11:28: strategy.canary.hosts: must be a positive count or a percentage like "25%", got 0`},
		{name: "no balancer", src: base + "strategy: {canary: {hosts: 1, weight: 5%}}\n",
			want: "plan.yaml:6:12: strategy.canary: a canary's share of the traffic is set by HAProxy server weights, and the plan sets no load_balancer.haproxy"},
		{name: "shorter than a sample", src: fleet4 + "strategy: {canary: {hosts: 1, weight: 5%, duration: 2s}}\nanalysis: {interval: 5s, gates: [{name: e, haproxy: \"error_rate < 1%\"}]}\n",
			want: `plan.yaml:11:53: strategy.canary.duration (2s) must be at least analysis.interval (5s): the gates watch the canary at least once`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.files)
			_, err := f.parse(tc.src)
			if got := f.problems(t, err); got != tc.want {
				t.Errorf("problems:\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}
