package plans

import (
	"strings"
	"testing"
)

// fourBehindLB is a plan of four hosts in backend web (lines 1-7); cases
// append a strategy from line 8 on.
const fourBehindLB = head +
	"hosts: [{name: web1, address: 10.0.0.1, lb_server: web/web1}, {name: web2, address: 10.0.0.2, lb_server: web/web2},\n" +
	"        {name: web3, address: 10.0.0.3, lb_server: web/web3}, {name: web4, address: 10.0.0.4, lb_server: web/web4}]\n" +
	"load_balancer: {haproxy: {socket: /run/haproxy.sock}}\n" + tail

// No batch may take a backend below strategy.min_in_service (default 1),
// unless allow_full_outage says so.
func TestOutageIsRefusedAtValidation(t *testing.T) {
	cases := []struct {
		name, strategy, want string
	}{
		{"batch as large as the fleet", "strategy: {batch: 10}\n",
			"plan.yaml:8:19: strategy.batch: batch 1 takes all 4 servers of backend web out of rotation at once (an outage); use at most 3, or set strategy.allow_full_outage: true to accept an outage"},
		{"100 percent", "strategy: {batch: \"100%\"}\n",
			"plan.yaml:8:19: strategy.batch: batch 1 takes all 4 servers of backend web out of rotation at once (an outage); use at most 3, or set strategy.allow_full_outage: true to accept an outage"},
		{"ramp step after percentages are resolved", "strategy: {batches: [1, \"75%\"], min_in_service: 2}\n",
			"plan.yaml:8:25: strategy.batches[1]: batch 2 takes 3 of backend web's 4 servers out of rotation, leaving 1, fewer than strategy.min_in_service=2; use at most 2 per batch, or set strategy.allow_full_outage: true"},
		{"min_in_service count", "strategy: {batch: 2, min_in_service: 3}\n",
			"plan.yaml:8:19: strategy.batch: batch 1 takes 2 of backend web's 4 servers out of rotation, leaving 2, fewer than strategy.min_in_service=3; use at most 1 per batch, or set strategy.allow_full_outage: true"},
		{"min_in_service percentage", "strategy: {batch: 2, min_in_service: \"75%\"}\n",
			"plan.yaml:8:19: strategy.batch: batch 1 takes 2 of backend web's 4 servers out of rotation, leaving 2, fewer than strategy.min_in_service=3; use at most 1 per batch, or set strategy.allow_full_outage: true"},
		{"min_in_service leaves nothing to deploy", "strategy: {min_in_service: 4}\n",
			"plan.yaml:8:28: strategy.min_in_service: 4 of backend web's 4 servers must stay in rotation, which leaves none to deploy to; lower it, or set strategy.allow_full_outage: true to accept an outage"},
		{"min_in_service zero", "strategy: {min_in_service: 0}\n",
			`plan.yaml:8:28: strategy.min_in_service: must be a positive count or a percentage like "25%", got 0`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			_, err := f.parse(fourBehindLB + tc.strategy)
			if got := f.problems(t, err); got != tc.want {
				t.Errorf("problems:\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}

func TestAllowFullOutage(t *testing.T) {
	f := newFixture(t, nil)
	p, err := f.parse(fourBehindLB + "strategy: {batch: 4, allow_full_outage: true}\n")
	if err != nil {
		t.Fatal(f.problems(t, err))
	}
	if got := p.MinInService("web"); got != 0 {
		t.Errorf("MinInService = %d, want 0 with allow_full_outage", got)
	}
	var b strings.Builder
	if err := p.Describe(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"THIS DEPLOY CAUSES AN OUTAGE: 1 of 1 batches", "OUTAGE: every server of backend web is out of rotation during this batch"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan show lacks %q:\n%s", want, b.String())
		}
	}
}

func TestMinInServiceDefaults(t *testing.T) {
	f := newFixture(t, nil)
	p, err := f.parse(fourBehindLB + "strategy: {batch: 3}\n")
	if err != nil {
		t.Fatal(f.problems(t, err))
	}
	if got := p.MinInService("web"); got != 1 {
		t.Errorf("MinInService = %d, want 1", got)
	}
	var b strings.Builder
	if err := p.Describe(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "at least 1 of each backend's servers stay in rotation") || strings.Contains(b.String(), "OUTAGE") {
		t.Errorf("plan show:\n%s", b.String())
	}
	// Without a balancer nothing is drained: no minimum, no refusal.
	if _, err := f.parse(base + "strategy: {batch: 5}\n"); err != nil {
		t.Errorf("no balancer: %v", err)
	}
}
