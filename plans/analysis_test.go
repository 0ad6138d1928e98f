package plans

import (
	"reflect"
	"testing"
	"time"
)

// lbBase is base with a load balancer (hosts need lb_server then).
const lbBase = head + "hosts: [{name: web1, address: 10.0.0.1, lb_server: web/web1}, {name: web2, address: 10.0.0.2, lb_server: web/web2}]\n" + tail +
	"load_balancer: {haproxy: {address: 127.0.0.1:9999}}\n" // line 6

func TestParseAnalysis(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want *Analysis
	}{
		{name: "none", src: lbBase},
		{name: "defaults", src: lbBase + "analysis: {gates: [{name: errors, haproxy: \"error_rate < 1%\"}]}\n",
			want: &Analysis{Interval: 5 * time.Second, Duration: 30 * time.Second, FailureLimit: 2, MinRequests: 50,
				Gates: []Gate{{Name: "errors", HAProxy: "error_rate < 1%"}}}},
		{name: "everything", src: lbBase + `analysis:
  interval: 1s
  duration: 10s
  failure_limit: 3
  min_requests: 20
  prometheus: {url: "http://10.0.0.9:9090"}
  gates:
    - {name: errors, haproxy: "error_rate <= baseline + 0.5%"}
    - name: latency
      haproxy: response_time <= baseline * 1.2
    - name: app
      prometheus:
        query: 'sum(rate(x{code=~"5..",host=~"{{.Hosts}}"}[30s]))'
        condition: result < 1%
`, want: &Analysis{Interval: time.Second, Duration: 10 * time.Second, FailureLimit: 3, MinRequests: 20,
			Prometheus: &PrometheusServer{URL: "http://10.0.0.9:9090"},
			Gates: []Gate{{Name: "errors", HAProxy: "error_rate <= baseline + 0.5%"}, {Name: "latency", HAProxy: "response_time <= baseline * 1.2"},
				{Name: "app", Prometheus: &PrometheusGate{Query: `sum(rate(x{code=~"5..",host=~"{{.Hosts}}"}[30s]))`, Condition: "result < 1%"}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			p, err := f.parse(tc.src)
			if err != nil {
				t.Fatal(f.problems(t, err))
			}
			if !reflect.DeepEqual(p.Analysis, tc.want) {
				t.Errorf("analysis = %+v, want %+v", p.Analysis, tc.want)
			}
			if p.HasGates() != (tc.want != nil) {
				t.Errorf("HasGates() = %v", p.HasGates())
			}
		})
	}
}

func TestParseAnalysisInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{name: "unknown key", src: lbBase + "analysis: {gates: [{name: e, haproxy: \"error_rate < 1%\"}], intervl: 1s}\n",
			want: `plan.yaml:7:60: analysis.intervl: unknown key; did you mean "interval"?`},
		{name: "unknown gate key", src: lbBase + "analysis: {gates: [{name: e, haprox: \"error_rate < 1%\"}]}\n",
			want: lines(`plan.yaml:7:20: analysis.gates[0]: set haproxy (a condition on HAProxy's counters) or prometheus (a query and a condition)`,
				`plan.yaml:7:30: analysis.gates[0].haprox: unknown key; did you mean "haproxy"?`)},
		{name: "no gates", src: lbBase + "analysis: {interval: 1s}\n",
			want: `plan.yaml:7:11: analysis: missing required key "gates" (what to judge, e.g. [{name: errors, haproxy: "error_rate < 1%"}])`},
		{name: "condition error at its column, quoted", src: lbBase + "analysis: {gates: [{name: e, haproxy: \"error_rate == 1%\"}]}\n",
			want: `plan.yaml:7:51: analysis.gates[0].haproxy: unknown comparison "==" (want <, <=, > or >=)`},
		{name: "condition error at its column, plain", src: lbBase + "analysis:\n  gates:\n    - name: e\n      haproxy: response_time < 1%\n",
			want: `plan.yaml:10:32: analysis.gates[0].haproxy: "1%" is a percentage; a time is written like 300ms`},
		{name: "unknown metric", src: lbBase + "analysis:\n  gates:\n    - name: e\n      haproxy: errors < 1%\n",
			want: `plan.yaml:10:16: analysis.gates[0].haproxy: unknown metric "errors" (want error_rate or response_time)`},
		{name: "haproxy gate without a balancer", src: base + "analysis: {gates: [{name: e, haproxy: \"error_rate < 1%\"}]}\n",
			want: `plan.yaml:6:30: analysis.gates[0].haproxy: an HAProxy gate reads the counters of load_balancer.haproxy, which the plan does not set`},
		{name: "both sources", src: lbBase + "analysis: {gates: [{name: e, haproxy: \"error_rate < 1%\", prometheus: {query: up, condition: result > 0}}]}\n",
			want: `plan.yaml:7:58: analysis.gates[0]: set haproxy or prometheus, not both (one gate, one source)`},
		{name: "duplicate gate names", src: lbBase + "analysis: {gates: [{name: e, haproxy: \"error_rate < 1%\"}, {name: e, haproxy: \"error_rate < 2%\"}]}\n",
			want: `plan.yaml:7:66: analysis.gates[1].name: "e" is already the name of a gate (line 7)`},
		{name: "prometheus gate without a server", src: lbBase + "analysis: {gates: [{name: p, prometheus: {query: up, condition: result > 0}}]}\n",
			want: `plan.yaml:7:30: analysis.gates[0].prometheus: a Prometheus gate needs the server: set analysis.prometheus.url`},
		{name: "prometheus gate with a baseline", src: lbBase + "analysis: {prometheus: {url: \"http://p:9090\"}, gates: [{name: p, prometheus: {query: up, condition: result <= baseline}}]}\n",
			want: `plan.yaml:7:101: analysis.gates[0].prometheus.condition: a Prometheus gate compares its result with a number; put the old release in the query itself`},
		{name: "prometheus query template", src: lbBase + "analysis: {prometheus: {url: \"http://p:9090\"}, gates: [{name: p, prometheus: {query: \"up{host=~'{{.Host}}'}\", condition: result > 0}}]}\n",
			want: `plan.yaml:7:86: analysis.gates[0].prometheus.query: template: p:1:12: executing "p" at <.Host>: can't evaluate field Host in type analysis.QueryData (it can use {{.Hosts}}, {{.Version}} and {{.Deployment}})`},
		{name: "bad url", src: lbBase + "analysis: {prometheus: {url: \"prom:9090\"}, gates: [{name: e, haproxy: \"error_rate < 1%\"}]}\n",
			want: `plan.yaml:7:30: analysis.prometheus.url: must be an http:// or https:// URL with a host, got "prom:9090"`},
		{name: "a baseline with one batch of every host", src: lbBase + "strategy: {batch: 100%, allow_full_outage: true}\nanalysis: {gates: [{name: l, haproxy: \"response_time <= baseline * 1.2\"}]}\n",
			want: `plan.yaml:8:39: analysis: a gate relative to the old release (baseline) needs hosts still on it, but the first batch takes all 2 hosts; use a smaller batch or an absolute threshold`},
		{name: "duration shorter than interval", src: lbBase + "analysis: {interval: 10s, duration: 5s, gates: [{name: e, haproxy: \"error_rate < 1%\"}]}\n",
			want: `plan.yaml:7:37: analysis: duration (5s) must be at least interval (10s): the window holds at least one sample`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			_, err := f.parse(tc.src)
			if got := f.problems(t, err); got != tc.want {
				t.Errorf("problems:\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}
