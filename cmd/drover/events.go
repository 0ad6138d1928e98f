package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/orchestrator"
)

// The view is driven by the recorded events (deploy.Event) in local and
// cluster mode alike: a local deploy follows its own store as a cluster
// client follows the cluster's event stream, so both show the same thing,
// and what the engine saw that matters to an operator (preflight, notes,
// warnings, probes) is in the ledger as reports (deploy.Report).

// lines is what the view keeps to show recorded events as lines: which
// batch each host is in, which batches were announced, when each host's
// stage began, how far each host got.
type lines struct {
	batches [][]string
	batchOf map[string]int
	opened  map[string]bool // batch (per phase) announced
	last    map[string]time.Time
	reached map[string]int // host/phase -> furthest stage seen (stageRank)
}

// rerun is how the view marks a stage the engine runs a second time: a
// new leader resumes a host from its last recorded stage, which the old
// leader may have begun.
const rerun = "re-run by the new leader"

// stageRank orders a host's pipeline stages.
var stageRank = map[deploy.Stage]int{
	deploy.StageDrain: 1, deploy.StageInstall: 2, deploy.StageActivate: 3,
	deploy.StageVerify: 4, deploy.StageEnable: 5,
}

func newLines(d deploy.Deployment) *lines {
	l := &lines{batches: d.Batches, batchOf: map[string]int{}, opened: map[string]bool{}, last: map[string]time.Time{}, reached: map[string]int{}}
	for i, b := range d.Batches {
		for _, h := range b {
			l.batchOf[h] = i
		}
	}
	return l
}

// of returns the lines (in the documented event schema, docs/json.md) that
// show the recorded event ev: none, one, or a batch's start and its first
// stage.
func (l *lines) of(ev deploy.Event) []orchestrator.Event {
	base := orchestrator.Event{Time: ev.Time, Deployment: ev.Deployment, Host: ev.Host, Phase: ev.Phase, Version: ev.Target,
		Message: ev.Message, Error: ev.Error}
	switch ev.Kind {
	case deploy.EvCreated:
		base.Kind, base.Batches, base.State = orchestrator.EventStarted, len(l.batches), ev.State
	case deploy.EvRequest:
		base.Kind, base.Message = orchestrator.EventWarning, "operator asked to "+ev.Message
	case deploy.EvTrimmed, deploy.EvWarning:
		base.Kind = orchestrator.EventWarning
	case deploy.EvNote:
		base.Kind = orchestrator.EventNote
	case deploy.EvPreflight:
		base.Kind = orchestrator.EventPreflight
	case deploy.EvProbe:
		base.Kind, base.Stage = orchestrator.EventProbe, deploy.StageVerify
	case deploy.EvAnalysisStart, deploy.EvAnalysis:
		base.Kind, base.Batch, base.Batches = orchestrator.EventAnalysis, ev.Batch, len(l.batches)
	case deploy.EvWeights:
		base.Kind, base.Weights, base.Share = orchestrator.EventCanary, ev.Weights, ev.Share
	case deploy.EvGate:
		var out []orchestrator.Event
		for _, s := range ev.Samples {
			e := base
			e.Kind, e.Batch, e.Sample, e.Message = orchestrator.EventGate, ev.Batch, &s, s.String()
			out = append(out, e)
		}
		return out
	case deploy.EvState:
		switch {
		case ev.State == deploy.StateRollingBack:
			base.Kind, base.Message, base.Error = orchestrator.EventRollback, ev.Error, ""
		case ev.State == deploy.StatePaused:
			base.Kind, base.Message = orchestrator.EventPaused, "paused at a safe point; continue with 'drover resume "+ev.Deployment+"'"
		case ev.State.Terminal():
			base.Kind, base.State = orchestrator.EventFinished, ev.State
		default:
			return nil
		}
	case deploy.EvStage:
		return l.stage(ev, base)
	default:
		return nil
	}
	return []orchestrator.Event{base}
}

func (l *lines) stage(ev deploy.Event, base orchestrator.Event) []orchestrator.Event {
	var out []orchestrator.Event
	b, ok := l.batchOf[ev.Host]
	if !ok {
		return nil
	}
	key := fmt.Sprintf("%s/%d", ev.Phase, b)
	if ev.Stage != deploy.StagePending && ev.Stage != deploy.StageSkipped && !l.opened[key] {
		l.opened[key] = true
		out = append(out, orchestrator.Event{Time: ev.Time, Deployment: ev.Deployment, Kind: orchestrator.EventBatch,
			Batch: b + 1, Batches: len(l.batches), Hosts: l.batches[b], Phase: ev.Phase})
	}
	if t, ok := l.last[ev.Host]; ok {
		base.Elapsed = ev.Time.Sub(t)
	}
	l.last[ev.Host] = ev.Time
	switch ev.Stage {
	case deploy.StageDone:
		base.Kind, base.Error = orchestrator.EventHostDone, ""
	case deploy.StageFailed:
		base.Kind, base.Stage, base.Output = orchestrator.EventHostFailed, ev.During, ev.Output
	case deploy.StageSkipped:
		base.Kind, base.Message, base.Error = orchestrator.EventHostSkipped, ev.Error, ""
	case deploy.StagePending:
		return out
	default:
		base.Kind, base.Stage = orchestrator.EventStage, ev.Stage
		hk := ev.Host + "/" + string(ev.Phase)
		if r := stageRank[ev.Stage]; r > 0 {
			if r <= l.reached[hk] {
				base.Message = rerun
			}
			l.reached[hk] = max(l.reached[hk], r)
		}
	}
	return append(out, base)
}

// record shows one recorded event of the deployment that begin laid out.
func (v *view) record(ev deploy.Event) {
	v.mu.Lock()
	l := v.lines
	v.mu.Unlock()
	if l == nil {
		return
	}
	for _, e := range l.of(ev) {
		v.event(e)
	}
}

// events is where a view reads a deployment's recorded events: the
// embedded coordinator's store, or the cluster's event stream.
type eventSource interface {
	// Events returns the events of deployment id after Seq after, and the
	// last applied Seq.
	Events(id string, after uint64) ([]deploy.Event, uint64)
	// Changed returns a channel closed at the next recorded change.
	Changed() <-chan struct{}
}

// followLocal feeds v the events of deployment id recorded in src after
// Seq after, until ctx ends; then it shows what was recorded up to then and
// returns.
func followLocal(ctx context.Context, src eventSource, v *view, id string, after uint64) {
	for {
		changed := src.Changed()
		evs, _ := src.Events(id, after)
		for _, ev := range evs {
			v.record(ev)
			after = max(after, ev.Seq)
		}
		select {
		case <-ctx.Done():
			evs, _ := src.Events(id, after)
			for _, ev := range evs {
				v.record(ev)
			}
			return
		case <-changed:
		}
	}
}

// note prints an operator-facing message the way the view does (a JSON
// line with -o json), before or without a view of a deployment.
func note(g *globalFlags, msg string) {
	if v, err := newView(os.Stdout, g.output); err == nil {
		v.note(msg)
	}
}
