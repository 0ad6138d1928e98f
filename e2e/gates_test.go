package e2e

import (
	"context"
	"fmt"
	"github.com/drover-dev/drover/internal/testwait"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
)

// Analysis windows short enough for CI: a sample every 500ms, each batch
// watched 3s, a gate failed after 2 bad samples in a row.
const gateWindows = "  interval: 500ms\n  duration: 3s\n  failure_limit: 2\n  min_requests: 20\n"

// errorsGate, latencyGate and promGate are the gates of the tests below.
const (
	errorsGate = `    - {name: errors, haproxy: "error_rate < 1%"}` + "\n"
	// HAProxy's rtime is in whole milliseconds: the demo app answers in
	// well under 1ms, so a ratio to the baseline (0ms * 1.2) would judge
	// rounding noise; a margin does not.
	latencyGate = `    - {name: latency, haproxy: "response_time <= baseline + 20ms"}` + "\n"
	// The share of the new release's answers that are 5xx, from the demo
	// app's own counters; "or vector(0)": a release without a single 5xx
	// has no 5xx series at all.
	promGate = `    - name: app
      prometheus:
        query: '(sum(rate(demoapp_http_requests_total{host=~"{{.Hosts}}",version="{{.Version}}",code=~"5.."}[3s])) or vector(0)) / sum(rate(demoapp_http_requests_total{host=~"{{.Hosts}}",version="{{.Version}}"}[3s]))'
        condition: result < 1%
`
)

// gateSession is a lab of 4 hosts on v1, with Prometheus scraping them.
type gateSession struct {
	*session
	prom *lab.Prometheus
}

func (g *gateSession) planWith(version string, b lab.Build, batch string, analysis string) string {
	g.t.Helper()
	art, err := lab.BuildArtifactOf(context.Background(), filepath.Join(g.lab.Dir, "artifacts"), version, b)
	if err != nil {
		g.t.Fatalf("build %s: %v", version, err)
	}
	p := lab.PlanParams{Version: version, Artifact: art, Batch: batch}
	if analysis != "" {
		p.Extra = "analysis:\n" + gateWindows + fmt.Sprintf("  prometheus: {url: %q}\n", g.prom.URL) + "  gates:\n" + analysis
	}
	path := filepath.Join(g.lab.Dir, "plan-"+version+".yaml")
	if err := g.lab.WritePlan(path, p); err != nil {
		g.t.Fatal(err)
	}
	return path
}

// afterDeployRequests is the traffic measured after a deploy ends: about
// two seconds of the lab's load generator.
const afterDeployRequests = 4000

// deployUnderLoad deploys plan with load through HAProxy from a little
// before to a little after, and returns drover's exit code, its events and
// what the load saw.
func (g *gateSession) deployUnderLoad(plan string) (int, *drover, lab.Result) {
	g.t.Helper()
	ld, err := g.lab.StartLoad(context.Background(), 4)
	if err != nil {
		g.t.Fatal(err)
	}
	code, d := g.run("deploy", plan)
	// Traffic goes on after the deploy, as it would for users: a bad
	// release left in place would go on failing them. The stretch is
	// counted in requests (what a left-over release would fail), not time.
	ctx := context.Background()
	after, err := g.lab.FrontendRequests(ctx)
	if err != nil {
		g.t.Fatal(err)
	}
	testwait.Within(g.t, time.Minute, fmt.Sprintf("%d more requests after the deploy", afterDeployRequests), func() bool {
		n, err := g.lab.FrontendRequests(ctx)
		return err == nil && n >= after+afterDeployRequests
	})
	res, err := ld.Stop()
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Logf("load: %d requests, %d failed, by version %v", res.Requests, res.Failures, res.ByVersion)
	return code, d, res
}

// gateEvents prints every sample and verdict, and returns the first failed
// host's event (the rollback decision) if any.
func gateEvents(t *testing.T, d *drover) (samples int, decision *orchestrator.Event) {
	t.Helper()
	for _, ev := range d.stdout.all() {
		switch {
		case ev.Kind == orchestrator.EventGate:
			if ev.Sample == nil {
				t.Errorf("a gate event without its sample: %+v", ev)
				continue
			}
			samples++
			t.Logf("%s batch %d gate %s %s: %s", ev.Time.Format("15:04:05.000"), ev.Batch, ev.Sample.Gate, ev.Sample.Verdict, ev.Sample)
		case ev.Kind == orchestrator.EventAnalysis:
			t.Logf("%s analysis: %s", ev.Time.Format("15:04:05.000"), ev.Message)
		case ev.Kind == orchestrator.EventHostFailed && decision == nil:
			e := ev
			decision = &e
		}
	}
	return samples, decision
}

// firstFailure is when the load generator saw its first failed request.
func firstFailure(t *testing.T, res lab.Result, day time.Time) time.Time {
	t.Helper()
	if len(res.FirstErrors) == 0 {
		return time.Time{}
	}
	clock, _, _ := strings.Cut(res.FirstErrors[0], " ")
	at, err := time.ParseInLocation("15:04:05.000", clock, time.Local)
	if err != nil {
		t.Errorf("first error %q: %v", res.FirstErrors[0], err)
		return time.Time{}
	}
	day = day.Local()
	return time.Date(day.Year(), day.Month(), day.Day(), at.Hour(), at.Minute(), at.Second(), at.Nanosecond(), time.Local)
}

// TestAnalysisGates: releases judged by their metrics under real load
// through HAProxy, with a real Prometheus (issue 12, e2e a, b, c, f).
func TestAnalysisGates(t *testing.T) {
	s := newSession(t, 4)
	prom, err := s.lab.StartPrometheus(context.Background(), 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateSession{session: s, prom: prom}
	if code, d := g.run("deploy", g.planWith("v1", lab.Build{}, "2", "")); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}

	t.Run("f: a good release passes every gate", func(t *testing.T) {
		g.t = t
		start := time.Now()
		code, d, res := g.deployUnderLoad(g.planWith("v2", lab.Build{}, "2", ""))
		plain := d.exited.Sub(start)
		if code != 0 || res.Failures != 0 {
			t.Fatalf("deploy v2 without gates: exit %d, %d failed requests\n%s", code, res.Failures, d.stdout.text())
		}
		start = time.Now()
		code, d, res = g.deployUnderLoad(g.planWith("v3", lab.Build{}, "2", errorsGate+latencyGate+promGate))
		gated := d.exited.Sub(start)
		samples, failed := gateEvents(t, d)
		if code != 0 || failed != nil || res.Failures != 0 {
			t.Fatalf("deploy v3 with gates: exit %d, failed host %+v, %d failed requests\n%s", code, failed, res.Failures, d.stdout.text())
		}
		passed := 0
		for _, ev := range d.stdout.all() {
			if ev.Kind == orchestrator.EventAnalysis && strings.Contains(ev.Message, "passed every gate") {
				passed++
			}
		}
		if passed != 2 || samples < 2*3 {
			t.Errorf("%d batches passed, %d samples; want 2 (both batches), at least 6 (3 gates, 2 batches)", passed, samples)
		}
		g.expectAllOn("v3")
		t.Logf("BENCH gates-good: deploy 4 hosts in 2 batches: %.2fs without gates, %.2fs with 3 gates (2 windows of 3s = 6s configured): +%.2fs",
			plain.Seconds(), gated.Seconds(), (gated - plain).Seconds())
	})

	// bad deploys a release that must be stopped in its first batch by
	// the gate named gate, and rolled back to v3.
	bad := func(t *testing.T, version string, b lab.Build, gates, gate string) {
		g.t = t
		code, d, res := g.deployUnderLoad(g.planWith(version, b, "1", gates))
		_, decision := gateEvents(t, d)
		if code != 3 {
			t.Fatalf("deploy %s: exit %d, want 3 (rolled back)\n%s", version, code, d.stdout.text())
		}
		if decision == nil || decision.Host != "web1" || !strings.Contains(decision.Error, "analysis of batch 1: gate "+gate) {
			t.Fatalf("first failure %+v, want web1 failed by gate %s in batch 1", decision, gate)
		}
		for _, ev := range d.stdout.all() {
			if ev.Kind == orchestrator.EventStage && ev.Version == version && ev.Host != "web1" {
				t.Errorf("%s got %s after the first batch failed its analysis", ev.Host, version)
			}
		}
		g.expectAllOn("v3")
		// Without the gate, one batch (1 host of 4) serving the release
		// through the same load would fail its error rate of a quarter of
		// the requests; the rest of the fleet would follow.
		withoutGate := b.ErrorRate * float64(res.Requests) / 4
		t.Logf("BENCH gates-%s: %d of %d requests failed (%.3f%%); one batch's share without the gate: %.0f",
			gate, res.Failures, res.Requests, 100*float64(res.Failures)/float64(max(res.Requests, 1)), withoutGate)
		if b.ErrorRate > 0 {
			if float64(res.Failures) >= withoutGate {
				t.Errorf("%d failed requests, not fewer than one batch's share without the gate (%.0f)", res.Failures, withoutGate)
			}
			if first := firstFailure(t, res, decision.Time); !first.IsZero() {
				t.Logf("BENCH gates-%s: first 5xx at %s, rollback decided at %s: %.0fms later",
					gate, first.Format("15:04:05.000"), decision.Time.Local().Format("15:04:05.000"), float64(decision.Time.Sub(first).Milliseconds()))
			}
		}
	}
	t.Run("a: 5% errors stopped by the HAProxy gate", func(t *testing.T) {
		bad(t, "v4", lab.Build{ErrorRate: 0.05}, errorsGate, "errors")
	})
	t.Run("b: 5% errors stopped by a Prometheus gate", func(t *testing.T) {
		bad(t, "v5", lab.Build{ErrorRate: 0.05}, promGate, "app")
	})
	t.Run("c: slow but healthy stopped by the relative latency gate", func(t *testing.T) {
		bad(t, "v6", lab.Build{Slow: 150 * time.Millisecond}, latencyGate, "latency")
	})
}

// TestClusterAnalysisFailover: on a three-node cluster, the samples of a
// batch's analysis reach the watching CLI through Raft, and a leader
// killed while it judges the first batch leaves it open: the new leader
// judges it again before the next batch, without driving its hosts again.
func TestClusterAnalysisFailover(t *testing.T) {
	c := newCluster(t, 4)
	withGates := func(version string) string {
		return c.plan(version, false, "2", func(p *lab.PlanParams) {
			p.HAProxyTCP = true
			p.Extra = "analysis:\n  interval: 500ms\n  duration: 4s\n  failure_limit: 2\n  min_requests: 20\n  gates:\n" + errorsGate
		})
	}
	if code, d := c.runWith(c.env(), "deploy", c.plan("v1", false, "2", func(p *lab.PlanParams) { p.HAProxyTCP = true })); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	var killed string
	var tKill time.Time
	var d *drover
	c.underLoad(2, func() {
		d = c.startWith(c.env(), "deploy", withGates("v2"))
		d.stdout.waitFor(t, "a sample of batch 1", func(ev orchestrator.Event) bool {
			return ev.Kind == orchestrator.EventGate && ev.Batch == 1 && ev.Sample != nil
		})
		killed = c.waitLeader(c.nodes)
		tKill = time.Now()
		if err := c.Procs[killed].Kill(); err != nil {
			t.Fatalf("kill -9 %s: %v", killed, err)
		}
		if code := d.wait(t); code != 0 {
			t.Fatalf("deploy v2 with the leader killed in batch 1's analysis: exit %d\n%s\n%s", code, d.stdout.text(), d.stderr.String())
		}
		c.startServer(killed, false)
	})
	c.expectAllOn("v2")
	c.noReinstallAfterDone(c.audit(), tKill.Add(-time.Minute), "v2")
	// Batch 1 passed after the kill: judged by the new leader, and before
	// batch 2 opened.
	var passed1, batch2 time.Time
	samples := 0
	for _, ev := range d.stdout.all() {
		switch {
		case ev.Kind == orchestrator.EventGate:
			samples++
		case ev.Kind == orchestrator.EventAnalysis && ev.Batch == 1 && strings.Contains(ev.Message, "passed"):
			passed1 = ev.Time
		case ev.Kind == orchestrator.EventBatch && ev.Batch == 2 && batch2.IsZero():
			batch2 = ev.Time
		}
	}
	t.Logf("killed %s at %s; batch 1 passed at %s; batch 2 began at %s; %d samples seen by the CLI",
		killed, tKill.Format("15:04:05.000"), passed1.Local().Format("15:04:05.000"), batch2.Local().Format("15:04:05.000"), samples)
	if passed1.IsZero() || passed1.Before(tKill) || batch2.IsZero() || batch2.Before(passed1) {
		t.Errorf("batch 1 passed at %v (kill at %v), batch 2 began at %v: want batch 1 judged by the new leader, then batch 2", passed1, tKill, batch2)
	}
}
