package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/analysis"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/orchestrator"
)

// The recorded events of a deployment (local or cluster) become the view's
// lines: a batch line when a batch starts, stages, the engine's reports
// (preflight, probes, notes), host outcomes with the stage that failed,
// and the end.
func TestRecordedEventLines(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	d := deploy.Deployment{ID: "d1", Batches: [][]string{{"web1", "web2"}, {"web3"}}}
	c := newLines(d)
	in := []deploy.Event{
		{Kind: deploy.EvCreated, Deployment: "d1", Time: t0, Target: "v2"},
		{Kind: deploy.EvPreflight, Deployment: "d1", Time: t0, Message: "3 hosts ready"},
		{Kind: deploy.EvStage, Deployment: "d1", Host: "web1", Stage: deploy.StageDrain, Phase: deploy.PhaseRollout, Time: t0},
		{Kind: deploy.EvProbe, Deployment: "d1", Host: "web1", Time: t0, Error: "connection refused"},
		{Kind: deploy.EvNote, Deployment: "d1", Host: "web2", Time: t0, Message: "waits: min_in_service"},
		{Kind: deploy.EvStage, Deployment: "d1", Host: "web2", Stage: deploy.StageDrain, Phase: deploy.PhaseRollout, Time: t0},
		{Kind: deploy.EvStage, Deployment: "d1", Host: "web1", Stage: deploy.StageDone, Phase: deploy.PhaseRollout, Time: t0.Add(time.Second)},
		{Kind: deploy.EvStage, Deployment: "d1", Host: "web3", Stage: deploy.StageFailed, Phase: deploy.PhaseRollout, Error: "boom", Output: "out", During: deploy.StageVerify, Time: t0},
		{Kind: deploy.EvState, Deployment: "d1", State: deploy.StateRollingBack, Error: "1 host failed", Time: t0},
		{Kind: deploy.EvState, Deployment: "d1", State: deploy.StateRolledBack, Time: t0},
	}
	var kinds []orchestrator.EventKind
	var failed orchestrator.Event
	var done orchestrator.Event
	for _, ev := range in {
		for _, out := range c.of(ev) {
			kinds = append(kinds, out.Kind)
			switch out.Kind {
			case orchestrator.EventHostFailed:
				failed = out
			case orchestrator.EventHostDone:
				done = out
			}
		}
	}
	want := []orchestrator.EventKind{
		orchestrator.EventStarted, orchestrator.EventPreflight,
		orchestrator.EventBatch, orchestrator.EventStage, orchestrator.EventProbe, orchestrator.EventNote, orchestrator.EventStage,
		orchestrator.EventHostDone,
		orchestrator.EventBatch, orchestrator.EventHostFailed,
		orchestrator.EventRollback, orchestrator.EventFinished,
	}
	if len(kinds) != len(want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("kinds %v, want %v", kinds, want)
		}
	}
	if failed.Error != "boom" || failed.Output != "out" || failed.Stage != deploy.StageVerify {
		t.Errorf("failed event %+v", failed)
	}
	if done.Elapsed != time.Second {
		t.Errorf("done after %v, want 1s (since the host's previous event)", done.Elapsed)
	}
}

func TestExitFor(t *testing.T) {
	touched := map[string]*deploy.HostProgress{"web1": {Touched: true}}
	untouched := map[string]*deploy.HostProgress{"web1": {}}
	tests := []struct {
		d    deploy.Deployment
		want int
	}{
		{deploy.Deployment{State: deploy.StateSucceeded}, exitOK},
		{deploy.Deployment{State: deploy.StateRolledBack, Hosts: touched}, exitRolledBack},
		{deploy.Deployment{State: deploy.StatePaused}, exitPaused},
		{deploy.Deployment{State: deploy.StateFailed, Hosts: touched}, exitFailed},
		{deploy.Deployment{State: deploy.StateFailed, Hosts: untouched}, exitUsage}, // refused by the preflight
		{deploy.Deployment{State: deploy.StateAborted, Hosts: touched}, exitFailed},
	}
	for _, tc := range tests {
		err := exitFor(tc.d)
		code := exitOK
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if code != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.d.State, code, tc.want)
		}
	}
}

// A cluster watcher shows every gate sample the leader recorded, as a
// local deploy does, and the text line says which gate saw what.
func TestRecordedGateLines(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	d := deploy.Deployment{ID: "d1", Batches: [][]string{{"web1"}, {"web2"}}}
	c := newLines(d)
	samples := []analysis.Sample{
		{Gate: "errors", Verdict: analysis.Fail, Condition: "error_rate < 1%", Metric: "error_rate", Value: 0.052, Threshold: 0.01, Requests: 830},
		{Gate: "app", Verdict: analysis.Inconclusive, Condition: "result < 1%", Metric: "result", Detail: "no data for sum(x)"},
	}
	out := c.of(deploy.Event{Kind: deploy.EvGate, Deployment: "d1", Batch: 1, Samples: samples, Time: t0})
	out = append(out, c.of(deploy.Event{Kind: deploy.EvAnalysis, Deployment: "d1", Batch: 1, Message: "batch 1 passed every gate", Time: t0})...)
	if len(out) != 3 || out[0].Kind != orchestrator.EventGate || out[1].Kind != orchestrator.EventGate || out[2].Kind != orchestrator.EventAnalysis {
		t.Fatalf("converted %+v", out)
	}
	if out[0].Sample == nil || out[0].Sample.Gate != "errors" || out[1].Sample.Gate != "app" || out[0].Batch != 1 {
		t.Errorf("samples %+v %+v", out[0].Sample, out[1].Sample)
	}
	v := &view{mode: "text", start: t0}
	if got, want := v.line(out[0]), "[  0.00s] gate errors   fail         error_rate 5.2% (want error_rate < 1%; 830 requests)"; got != want {
		t.Errorf("line:\n got %q\nwant %q", got, want)
	}
	if got, want := v.line(out[1]), "[  0.00s] gate app      inconclusive no data for sum(x)"; got != want {
		t.Errorf("line:\n got %q\nwant %q", got, want)
	}
	if got, want := v.line(out[2]), "[  0.00s] analysis of batch 1: batch 1 passed every gate"; got != want {
		t.Errorf("line:\n got %q\nwant %q", got, want)
	}
}

// A cluster watcher sees the canary's weights as a local deploy does, and
// the live summary shows the canary's share while it is set.
func TestRecordedCanaryLines(t *testing.T) {
	d := fleetOf(2, 1)
	c := newLines(d)
	set := c.of(deploy.Event{Kind: deploy.EvWeights, Deployment: "d1", Weights: map[string]int{"web/web1": 1, "web/web2": 9}, Share: 10, Message: "canary at 10% of the traffic"})
	back := c.of(deploy.Event{Kind: deploy.EvWeights, Deployment: "d1", Message: "every server is back at its weight"})
	if len(set) != 1 || set[0].Kind != orchestrator.EventCanary || set[0].Share != 10 || set[0].Weights["web/web2"] != 9 || len(back) != 1 || back[0].Share != 0 {
		t.Fatalf("converted %+v, %+v", set, back)
	}
	v, _ := newView(io.Discard, "text")
	v.begin(d)
	v.event(orchestrator.Event{Kind: orchestrator.EventBatch, Batch: 1, Batches: 2})
	v.event(set[0])
	if got := summaryLine(v.sum, 0, 0, 2, time.Now()); !strings.HasPrefix(got, "batch 1/2: canary at 10% of the traffic") {
		t.Errorf("summary during the canary: %q", got)
	}
	v.event(back[0])
	if got := summaryLine(v.sum, 0, 0, 2, time.Now()); strings.Contains(got, "canary") {
		t.Errorf("summary after the canary: %q", got)
	}
}
