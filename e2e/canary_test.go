package e2e

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
)

// canaryAt is strategy.canary: the first host at 10% of the traffic for d.
func canaryAt(d time.Duration) map[string]string {
	return map[string]string{"hosts": "1", "weight": "10%", "duration": d.String()}
}

// isCanarySet and isCanaryBack tell the canary's events apart: its
// weights set (with its share), and every server back at its weight.
func isCanarySet(ev orchestrator.Event) bool {
	return ev.Kind == orchestrator.EventCanary && ev.Share > 0
}
func isCanaryBack(ev orchestrator.Event) bool {
	return ev.Kind == orchestrator.EventCanary && ev.Share == 0
}

// expectWeightsRestored fails unless every server is at its configured
// weight on every HAProxy instance, read back from HAProxy itself.
func expectWeightsRestored(t *testing.T, l *lab.Lab) {
	t.Helper()
	all, err := l.Weights(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for inst, ws := range all {
		for server, w := range ws {
			if w.Current != w.Initial {
				t.Errorf("%s: %s at weight %d at the end, configured %d", inst, server, w.Current, w.Initial)
			}
		}
	}
	t.Logf("weights at the end: %v", all)
}

// waitCanaryWeights waits until server has the share (0-1) of its
// backend's total weight on every HAProxy instance, read back from HAProxy
// (a cluster records the weights before it sets them: its event comes
// first).
func waitCanaryWeights(t *testing.T, l *lab.Lab, server string, share float64) {
	t.Helper()
	var last map[string]map[string]lab.Weight
	testwait.Within(t, 30*time.Second, fmt.Sprintf("%s at %.0f%% of the backend's weight", server, 100*share), func() bool {
		all, err := l.Weights(context.Background())
		if err != nil {
			return false
		}
		last = all
		for _, ws := range all {
			sum := 0
			for _, w := range ws {
				sum += w.Current
			}
			if math.Abs(float64(ws[server].Current)/float64(max(sum, 1))-share) > 0.005 {
				return false
			}
		}
		return true
	})
	t.Logf("weights during the canary: %v", last)
}

// TestCanary (issue 12, e2e d): a canary at 10% of the traffic through
// HAProxy weights, under load. The share of the requests the canary host
// served while its weights were set, counted by the load generator from
// the version each answer names, is within a few points of 10%; the
// rollout then completes with every weight back at its configured value.
func TestCanary(t *testing.T) {
	s := newSession(t, 4)
	if code, d := s.run("deploy", s.plan("v1", false, "2")); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	plan := s.plan("v2", false, "2", func(p *lab.PlanParams) {
		p.Canary = canaryAt(10 * time.Second)
		p.Extra = "analysis:\n" + gateWindows + "  gates:\n" + errorsGate
	})
	var d *drover
	var during lab.Result
	s.underLoad(2, func() {
		d = s.start("deploy", plan)
		d.stdout.waitFor(t, "the canary's weights", isCanarySet)
		waitCanaryWeights(t, s.lab, "web1", 0.10)
		// A second load generator counts the answers while the canary's
		// weights are set: v2 is the canary host, v1 the others.
		ld, err := s.lab.StartLoad(context.Background(), 2)
		if err != nil {
			t.Fatal(err)
		}
		d.stdout.waitFor(t, "the weights restored after the canary", isCanaryBack)
		if during, err = ld.Stop(); err != nil {
			t.Fatal(err)
		}
		if code := d.wait(t); code != 0 {
			t.Fatalf("deploy v2 with a canary: exit %d\n%s\n%s", code, d.stdout.text(), d.stderr.String())
		}
	})
	s.expectAllOn("v2")
	expectWeightsRestored(t, s.lab)
	answered := during.ByVersion["v1"] + during.ByVersion["v2"]
	share := float64(during.ByVersion["v2"]) / float64(max(answered, 1))
	t.Logf("BENCH canary-share: the canary host (v2) answered %d of %d requests while at 10%% weight: %.2f%% (load %v, %d failed)",
		during.ByVersion["v2"], answered, 100*share, during.ByVersion, during.Failures)
	if answered < 1000 || math.Abs(share-0.10) > 0.03 {
		t.Errorf("the canary answered %.2f%% of %d requests, want 10%% within 3 points", 100*share, answered)
	}
	if during.Failures != 0 || len(during.ByVersion) != 2 {
		t.Errorf("during the canary: %d failed requests, versions %v", during.Failures, during.ByVersion)
	}
	// The canary was judged by its gate, and batch 2 began only after.
	var samples int
	var back, batch2 time.Time
	for _, ev := range d.stdout.all() {
		switch {
		case ev.Kind == orchestrator.EventGate && ev.Batch == 1:
			samples++
		case isCanaryBack(ev) && back.IsZero():
			back = ev.Time
		case ev.Kind == orchestrator.EventBatch && ev.Batch == 2 && batch2.IsZero():
			batch2 = ev.Time
		}
	}
	if samples < 2 || batch2.IsZero() || batch2.Before(back) {
		t.Errorf("%d samples of the canary; weights back at %v, batch 2 began at %v: want samples, then the weights back, then batch 2", samples, back, batch2)
	}
}

// TestBadCanaryRolledBack: a release that passes /health but serves 5%
// errors, at 10% of the traffic, fails the canary's gate: the canary host
// goes back to the old release, no other host gets it, and every weight
// is back.
func TestBadCanaryRolledBack(t *testing.T) {
	s := newSession(t, 4)
	if code, d := s.run("deploy", s.plan("v1", false, "2")); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	art, err := lab.BuildArtifactOf(context.Background(), filepath.Join(s.lab.Dir, "artifacts"), "v2", lab.Build{ErrorRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	plan := filepath.Join(s.lab.Dir, "plan-v2.yaml")
	if err := s.lab.WritePlan(plan, lab.PlanParams{Version: "v2", Artifact: art, Batch: "2", Canary: canaryAt(time.Minute),
		Extra: "analysis:\n" + gateWindows + "  gates:\n" + errorsGate}); err != nil {
		t.Fatal(err)
	}
	ld, err := s.lab.StartLoad(context.Background(), 4)
	if err != nil {
		t.Fatal(err)
	}
	code, d := s.run("deploy", plan)
	res, err := ld.Stop()
	if err != nil {
		t.Fatal(err)
	}
	samples, decision := gateEvents(t, d)
	if code != 3 {
		t.Fatalf("deploy of a bad canary: exit %d, want 3 (rolled back)\n%s", code, d.stdout.text())
	}
	if decision == nil || decision.Host != "web1" || !strings.Contains(decision.Error, "analysis of the canary (batch 1): gate errors") {
		t.Errorf("first failure %+v, want web1 failed by the canary's gate", decision)
	}
	for _, ev := range d.stdout.all() {
		if ev.Kind == orchestrator.EventStage && ev.Version == "v2" && ev.Host != "web1" {
			t.Errorf("%s got v2 after the canary failed", ev.Host)
		}
	}
	s.expectAllOn("v1")
	expectWeightsRestored(t, s.lab)
	t.Logf("BENCH canary-bad: %d samples; %d of %d requests failed (%.3f%%), by version %v",
		samples, res.Failures, res.Requests, 100*float64(res.Failures)/float64(max(res.Requests, 1)), res.ByVersion)
}

// TestCanaryAbortedAfterTheCLIDied: a local deploy killed (kill -9) while
// its canary is at its weight leaves the weights recorded; `drover abort`
// puts every server back at its configured weight before it records the
// end.
func TestCanaryAbortedAfterTheCLIDied(t *testing.T) {
	s := newSession(t, 3)
	if code, d := s.run("deploy", s.plan("v1", false, "1")); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	d := s.start("deploy", s.plan("v2", false, "1", func(p *lab.PlanParams) { p.Canary = canaryAt(10 * time.Minute) }))
	set := d.stdout.waitFor(t, "the canary's weights", isCanarySet)
	waitCanaryWeights(t, s.lab, "web1", 0.10)
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	d.wait(t)
	if code, a := s.run("abort", set.Deployment); code != 0 {
		t.Fatalf("abort: exit %d\n%s", code, a.stdout.text())
	}
	expectWeightsRestored(t, s.lab)
	if v := s.versions(); v["web1"] != "v2" || v["web2"] != "v1" || v["web3"] != "v1" {
		t.Errorf("after the abort: %v; want the canary left on v2, the others on v1", v)
	}
}

// TestClusterCanaryFailover (issue 12, e2e e): on a three-node cluster,
// the leader killed while the canary is at its weight: the new leader puts
// the weights back, watches the canary again from the start, and the
// rollout ends with every server at its configured weight.
func TestClusterCanaryFailover(t *testing.T) {
	c := newCluster(t, 4)
	if code, d := c.runWith(c.env(), "deploy", c.plan("v1", false, "2", func(p *lab.PlanParams) { p.HAProxyTCP = true })); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	plan := c.plan("v2", false, "2", func(p *lab.PlanParams) {
		p.HAProxyTCP = true
		p.Canary = canaryAt(6 * time.Second)
		p.Extra = "analysis:\n  interval: 500ms\n  duration: 3s\n  failure_limit: 2\n  min_requests: 10\n  gates:\n" + errorsGate
	})
	var killed string
	var tKill time.Time
	var d *drover
	c.underLoad(2, func() {
		d = c.startWith(c.env(), "deploy", plan)
		d.stdout.waitFor(t, "the canary's weights", isCanarySet)
		waitCanaryWeights(t, c.lab, "web1", 0.10)
		killed = c.waitLeader(c.nodes)
		tKill = time.Now()
		if err := c.Procs[killed].Kill(); err != nil {
			t.Fatalf("kill -9 %s: %v", killed, err)
		}
		if code := d.wait(t); code != 0 {
			t.Fatalf("deploy v2 with the leader killed during the canary: exit %d\n%s\n%s", code, d.stdout.text(), d.stderr.String())
		}
		c.startServer(killed, false)
	})
	c.expectAllOn("v2")
	expectWeightsRestored(t, c.lab)
	c.noReinstallAfterDone(c.audit(), tKill.Add(-time.Minute), "v2")
	// After the kill: the weights back (the new leader's first act), the
	// canary's weights set again, back again, then batch 2.
	var steps []string
	for _, ev := range d.stdout.all() {
		if ev.Time.Before(tKill) {
			continue
		}
		switch {
		case isCanarySet(ev):
			steps = append(steps, "set")
		case isCanaryBack(ev):
			steps = append(steps, "back")
		case ev.Kind == orchestrator.EventBatch && ev.Batch == 2:
			steps = append(steps, "batch 2")
		}
	}
	t.Logf("killed %s at %s; after it: %v", killed, tKill.Format("15:04:05.000"), steps)
	want := []string{"back", "set", "back", "batch 2"}
	if len(steps) < len(want) || !equalPrefix(steps, want) {
		t.Errorf("after the kill: %v, want %v: the new leader restores the weights, runs the canary again, then batch 2", steps, want)
	}
}

func equalPrefix(got, want []string) bool {
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
