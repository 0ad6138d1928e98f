package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
)

// A watcher that reconnects after a failover shows the events it missed in
// order, stamped with when they happened (not when they arrived), a stage
// the new leader re-runs as such, and the deployment's own duration.
func TestViewAfterFailover(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	d := deploy.Deployment{ID: "d1", Name: "web", Version: "v4", Created: t0,
		Batches: [][]string{{"web3"}},
		Hosts:   map[string]*deploy.HostProgress{"web3": {Name: "web3", Stage: deploy.StagePending}}}
	stage := func(ms int, s deploy.Stage) deploy.Event {
		return deploy.Event{Kind: deploy.EvStage, Deployment: "d1", Host: "web3", Stage: s, Phase: deploy.PhaseRollout, Target: "v4", Time: at(ms)}
	}
	in := []deploy.Event{
		{Kind: deploy.EvCreated, Deployment: "d1", Time: at(0)},
		stage(100, deploy.StageDrain),
		// The leader dies; the new one resumes web3 from its recorded stage.
		stage(1600, deploy.StageDrain),
		stage(1700, deploy.StageInstall),
		stage(2000, deploy.StageDone),
		{Kind: deploy.EvState, Deployment: "d1", State: deploy.StateSucceeded, Time: at(2100)},
	}
	var out bytes.Buffer
	v, err := newView(&out, "text")
	if err != nil {
		t.Fatal(err)
	}
	v.begin(d)
	for _, ev := range in {
		v.record(ev)
	}
	d.State, d.Ended = deploy.StateSucceeded, at(2100)
	d.Hosts["web3"].Stage, d.Hosts["web3"].Target = deploy.StageDone, "v4"
	v.end(d)

	want := []string{
		"[  0.00s] started d1",
		"[  0.10s] batch 1/1: web3",
		"[  0.10s] web3       drain -> v4",
		"[  1.60s] web3       drain (re-run by the new leader) -> v4",
		"[  1.70s] web3       install -> v4",
		"[  2.00s] web3       done: on v4",
		"[  2.10s] finished: succeeded",
		"deployment d1 succeeded after 2.1s",
	}
	got := out.String()
	for _, w := range want {
		if !strings.Contains(got, w+"\n") {
			t.Errorf("missing line %q in:\n%s", w, got)
		}
	}
	if n := strings.Count(got, "drain"); n != 2 {
		t.Errorf("drain shown %d times, want 2 (the second as a re-run):\n%s", n, got)
	}
}
