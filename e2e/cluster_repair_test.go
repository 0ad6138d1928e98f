package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
)

// TestClusterRepair: `drover repair` through a coordinator cluster (the
// real `drover server` processes, the CLI with DROVER_ADDR) brings a server
// drained by hand back into rotation, under load: once naming the plan
// file, once with the latest deployment's plan, which the leader reads.
func TestClusterRepair(t *testing.T) {
	c := newCluster(t, 4)
	tcp := func(p *lab.PlanParams) { p.HAProxyTCP, p.MinHealthyTime = true, 200*time.Millisecond }
	v1 := c.plan("v1", false, "2", tcp)
	if code, d := c.runWith(c.env(), "deploy", v1); code != 0 {
		t.Fatalf("deploy v1 on the cluster: exit %d\n%s", code, d.stdout.text())
	}
	c.expectAllOn("v1")

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"plan file", []string{"repair", v1}},
		{"latest deployment", []string{"repair"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			ctx := context.Background()
			if _, err := c.lab.HAProxy(ctx, "set server web/web2 state maint"); err != nil {
				t.Fatal(err)
			}
			if n, out, err := c.lab.OutOfRotation(ctx); err != nil || n != 1 {
				t.Fatalf("after draining web2 by hand: out of rotation %d %v (err %v), want 1", n, out, err)
			}
			res, _ := c.underLoad(2, func() {
				code, d := c.runWith(c.env(), tc.args...)
				if code != 0 {
					t.Fatalf("drover %v on the cluster: exit %d\n%s", tc.args, code, d.stdout.text())
				}
				enabled := false
				for _, ev := range d.stdout.all() {
					enabled = enabled || ev.Kind == orchestrator.EventStage && ev.Host == "web2" && ev.Stage == "enable"
				}
				if !enabled {
					t.Errorf("the repair did not show web2 enabled:\n%s", d.stdout.text())
				}
			})
			t.Logf("repair through the cluster: %d requests through HAProxy, %d failed", res.Requests, res.Failures)
			c.expectAllOn("v1")
		})
	}
}
