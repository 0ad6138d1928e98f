package deploy

import (
	"fmt"
	"maps"
	"slices"
)

var (
	legalStages = map[Stage]bool{StagePending: true, StageDrain: true, StageInstall: true, StageActivate: true,
		StageVerify: true, StageEnable: true, StageDone: true, StageFailed: true, StageSkipped: true}
	legalPhases = map[Phase]bool{"": true, PhaseRollout: true, PhaseRollback: true}
	legalKinds  = map[Kind]bool{"": true, KindDeploy: true, KindRollback: true, KindRepair: true}
)

// Problems checks everything Apply takes for granted and returns every
// problem found, each naming the record (nil when there is none): a ledger
// with one must not be installed (ErrInconsistent).
func (l *Ledger) Problems() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if l.Deployments == nil {
		bad("no deployments map: not a drover state")
	}
	inOrder := map[string]bool{}
	for _, id := range l.Order {
		if inOrder[id] {
			bad("order: %s listed twice", id)
		}
		inOrder[id] = true
		if l.Deployments[id] == nil {
			bad("order: %s is not a deployment", id)
		}
	}
	running := map[string]string{} // name -> id of its one unfinished deployment
	for _, id := range slices.Sorted(maps.Keys(l.Deployments)) {
		d := l.Deployments[id]
		if d == nil || d.ID != id {
			bad("deployment %s: empty, or recorded under another id", id)
			continue
		}
		if !inOrder[id] {
			bad("deployment %s: missing from the order", id)
		}
		if !d.State.Known() {
			bad("deployment %s: unknown state %q", id, d.State)
		}
		if !legalKinds[d.Kind] {
			bad("deployment %s: unknown kind %q", id, d.Kind)
		}
		if !d.State.Terminal() {
			if other, ok := running[d.Name]; ok {
				bad("deployments %s and %s: both unfinished deployments of %q", other, id, d.Name)
			}
			running[d.Name] = id
		}
		seen := map[string]bool{}
		for _, h := range d.HostNames() {
			if seen[h] {
				bad("deployment %s: host %s is in two batches", id, h)
			}
			seen[h] = true
			hp := d.Hosts[h]
			if hp == nil {
				bad("deployment %s: host %s has no progress record", id, h)
				continue
			}
			if !legalStages[hp.Stage] || !legalPhases[hp.Phase] {
				bad("deployment %s: host %s: unknown stage %q or phase %q", id, h, hp.Stage, hp.Phase)
			}
			if d.State.Terminal() {
				continue
			}
			if r := l.Hosts[h]; r == nil || r.Lock != id {
				bad("deployment %s is %s, but host %s has no record locked by it", id, d.State, h)
			}
		}
		if len(seen) == 0 {
			bad("deployment %s: no hosts", id)
		}
		for h := range d.Hosts {
			if !seen[h] {
				bad("deployment %s: host %s is in no batch", id, h)
			}
		}
	}
	for _, h := range slices.Sorted(maps.Keys(l.Hosts)) {
		r := l.Hosts[h]
		if r == nil || r.Name != h {
			bad("host %s: empty, or recorded under another name", h)
			continue
		}
		if r.Lock == "" {
			continue
		}
		if d := l.Deployments[r.Lock]; d == nil || d.State.Terminal() {
			bad("host %s: locked by %s, which is not an unfinished deployment", h, r.Lock)
		}
	}
	for i, ev := range l.Events {
		if ev.Seq > l.Seq || (i > 0 && ev.Seq < l.Events[i-1].Seq) {
			bad("event %d: sequence %d out of order (state at %d)", i, ev.Seq, l.Seq)
			break
		}
	}
	return errs
}
