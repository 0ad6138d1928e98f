package raftstore

import (
	"errors"
	"fmt"
)

// ErrInconsistent means a state (a backup, a snapshot) decodes but breaks
// the rules that apply relies on, such as a running deployment whose host
// has no record. Installing it would make every node fail at the same log
// entry, so it is refused whole.
var ErrInconsistent = errors.New("inconsistent state")

// MaxBackupBytes bounds a backup given to Restore: far above a real state
// (history is bounded, see Retention), far below what would exhaust a
// node's memory.
const MaxBackupBytes = 256 << 20

// backupLimit is MaxBackupBytes; tests lower it.
var backupLimit int64 = MaxBackupBytes

var (
	legalStates = map[DeploymentState]bool{StateRunning: true, StatePaused: true, StateRollingBack: true,
		StateSucceeded: true, StateFailed: true, StateRolledBack: true, StateAborted: true}
	legalStages = map[Stage]bool{StagePending: true, StageDrain: true, StageInstall: true, StageActivate: true,
		StageVerify: true, StageEnable: true, StageDone: true, StageFailed: true, StageSkipped: true}
	legalPhases = map[Phase]bool{"": true, PhaseRollout: true, PhaseRollback: true}
	legalKinds  = map[Kind]bool{"": true, KindDeploy: true, KindRollback: true, KindRepair: true}
	legalRoles  = map[TokenRole]bool{RoleManage: true, RoleRead: true, RoleAgentJoin: true}
)

// validate checks everything apply takes for granted. It returns every
// problem found, each naming the record, wrapped in ErrInconsistent.
func (s *State) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Deployments == nil {
		bad("no deployments map: not a drover state")
	}
	inOrder := map[string]bool{}
	for _, id := range s.Order {
		if inOrder[id] {
			bad("order: %s listed twice", id)
		}
		inOrder[id] = true
		if s.Deployments[id] == nil {
			bad("order: %s is not a deployment", id)
		}
	}
	running := map[string]string{} // name -> id of its one unfinished deployment
	for _, id := range sortedKeys(s.Deployments) {
		d := s.Deployments[id]
		if d == nil || d.ID != id {
			bad("deployment %s: empty, or recorded under another id", id)
			continue
		}
		if !inOrder[id] {
			bad("deployment %s: missing from the order", id)
		}
		if !legalStates[d.State] {
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
			if r := s.Hosts[h]; r == nil || r.Lock != id {
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
	for _, h := range sortedKeys(s.Hosts) {
		r := s.Hosts[h]
		if r == nil || r.Name != h {
			bad("host %s: empty, or recorded under another name", h)
			continue
		}
		if r.Lock == "" {
			continue
		}
		if d := s.Deployments[r.Lock]; d == nil || d.State.Terminal() {
			bad("host %s: locked by %s, which is not an unfinished deployment", h, r.Lock)
		}
	}
	for i, ev := range s.Events {
		if ev.Seq > s.Seq || (i > 0 && ev.Seq < s.Events[i-1].Seq) {
			bad("event %d: sequence %d out of order (state at %d)", i, ev.Seq, s.Seq)
			break
		}
	}
	for _, name := range sortedKeys(s.Tokens) {
		if t := s.Tokens[name]; t == nil || t.Name != name || t.Hash == "" || !legalRoles[t.Role] {
			bad("token %s: empty, misnamed, without a hash or of an unknown role", name)
		}
	}
	for _, name := range sortedKeys(s.Agents) {
		if a := s.Agents[name]; a == nil || a.Name != name {
			bad("agent %s: empty or misnamed", name)
		}
	}
	for _, id := range sortedKeys(s.Nodes) {
		if n := s.Nodes[id]; n == nil || n.ID != id {
			bad("node %s: empty or misnamed", id)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	const most = 10
	if len(errs) > most {
		errs = append(errs[:most], fmt.Errorf("and %d more problems", len(errs)-most))
	}
	return fmt.Errorf("%w:\n%w", ErrInconsistent, errors.Join(errs...))
}
