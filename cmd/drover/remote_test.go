package main

import (
	"errors"
	"testing"
	"time"

	"github.com/drover-dev/drover/orchestrator"
	"github.com/drover-dev/drover/raftstore"
)

// The replicated events of a cluster deploy become the same progress
// events a local deploy shows: a batch line when a batch starts, stages,
// host outcomes, and the end.
func TestEventConverter(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	d := raftstore.Deployment{ID: "d1", Batches: [][]string{{"web1", "web2"}, {"web3"}}}
	c := newEventConverter(d)
	in := []raftstore.Event{
		{Kind: raftstore.EvCreated, Deployment: "d1", Time: t0, Target: "v2"},
		{Kind: raftstore.EvStage, Deployment: "d1", Host: "web1", Stage: raftstore.StageDrain, Phase: raftstore.PhaseRollout, Time: t0},
		{Kind: raftstore.EvStage, Deployment: "d1", Host: "web2", Stage: raftstore.StageDrain, Phase: raftstore.PhaseRollout, Time: t0},
		{Kind: raftstore.EvStage, Deployment: "d1", Host: "web1", Stage: raftstore.StageDone, Phase: raftstore.PhaseRollout, Time: t0.Add(time.Second)},
		{Kind: raftstore.EvStage, Deployment: "d1", Host: "web3", Stage: raftstore.StageFailed, Phase: raftstore.PhaseRollout, Error: "boom", Output: "out", Time: t0},
		{Kind: raftstore.EvState, Deployment: "d1", State: raftstore.StateRollingBack, Error: "1 host failed", Time: t0},
		{Kind: raftstore.EvState, Deployment: "d1", State: raftstore.StateRolledBack, Time: t0},
	}
	var kinds []orchestrator.EventKind
	var failed orchestrator.Event
	var done orchestrator.Event
	for _, ev := range in {
		for _, out := range c.convert(ev) {
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
		orchestrator.EventStarted,
		orchestrator.EventBatch, orchestrator.EventStage, orchestrator.EventStage,
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
	if failed.Error != "boom" || failed.Output != "out" {
		t.Errorf("failed event %+v", failed)
	}
	if done.Elapsed != time.Second {
		t.Errorf("done after %v, want 1s (since the host's previous event)", done.Elapsed)
	}
}

func TestExitFor(t *testing.T) {
	touched := map[string]*raftstore.HostProgress{"web1": {Touched: true}}
	untouched := map[string]*raftstore.HostProgress{"web1": {}}
	tests := []struct {
		d    raftstore.Deployment
		want int
	}{
		{raftstore.Deployment{State: raftstore.StateSucceeded}, exitOK},
		{raftstore.Deployment{State: raftstore.StateRolledBack, Hosts: touched}, exitRolledBack},
		{raftstore.Deployment{State: raftstore.StatePaused}, exitPaused},
		{raftstore.Deployment{State: raftstore.StateFailed, Hosts: touched}, exitFailed},
		{raftstore.Deployment{State: raftstore.StateFailed, Hosts: untouched}, exitUsage}, // refused by the preflight
		{raftstore.Deployment{State: raftstore.StateAborted, Hosts: touched}, exitFailed},
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
