package deploy

import (
	"errors"
	"fmt"
	"time"
)

// Action is an operator's lifecycle action on an unfinished deployment.
type Action string

// Actions. (Rollback is not one: it records a new deployment, see
// orchestrator.Engine.SubmitRollback.)
const (
	ActionPause  Action = "pause"
	ActionResume Action = "resume"
	ActionAbort  Action = "abort"
)

// ErrUnknownAction means an action is none of the Actions.
var ErrUnknownAction = errors.New("unknown action")

// ErrNotRunning means a pause was asked of a deployment that no engine
// runs: there is nothing to stop.
var ErrNotRunning = errors.New("no engine runs it")

// Driver says what drives a deployment when a lifecycle decision is made:
// whether an engine will reach a safe point to honour a request.
type Driver int

// Drivers.
const (
	// Unattended: no engine runs the deployment, and none will until an
	// operator starts one (the embedded coordinator between commands: a
	// "running" deployment there was interrupted).
	Unattended Driver = iota
	// Supervised: an engine runs it, or will (a cluster's leader
	// supervises every running deployment).
	Supervised
	// Stuck: the supervising engine could not run it (its artifact lost,
	// its plan unreadable) and will try again later.
	Stuck
	// SafePoint: its engine is at a safe point (between batches: every
	// host in rotation on some release).
	SafePoint
)

// AbortedByOperator is the reason an operator's abort records.
const AbortedByOperator = "aborted by operator"

// AbortNow is the abort rule: whether an abort ends d now. An operator's
// abort (by Unattended or Supervised) ends a paused or an unattended
// deployment at once, leaving every host as it is: nothing acts on it. An
// engine honours a recorded request (AbortRequested) at its next safe
// point (by SafePoint), never in the middle of a host's pipeline; an
// engine that cannot run d (by Stuck) ends it only once every host is
// settled: until then a later run may still bring back a host that is out
// of rotation.
func AbortNow(d *Deployment, by Driver) bool {
	switch {
	case d.State.Terminal():
		return false
	case by == SafePoint:
		return d.AbortRequested
	case by == Stuck:
		return d.AbortRequested && d.settled()
	}
	return d.State == StatePaused || by == Unattended
}

// settled reports whether no host of d has a stage in flight.
func (d *Deployment) settled() bool {
	for _, hp := range d.Hosts {
		if !hp.Stage.Settled() {
			return false
		}
	}
	return true
}

// StopRequested reports whether an operator asked d's engine to stop at
// its next safe point (a pause, or an abort).
func (d *Deployment) StopRequested() bool {
	return d.PauseRequested || d.AbortRequested
}

// Decide turns an operator's action on d into the one command that
// records it, made at time at: pause and resume are requests the engine
// (and Apply, for resume) carry out; an abort ends d when AbortNow says
// so, and is otherwise requested of its engine.
func Decide(d *Deployment, a Action, by Driver, at time.Time) (Command, error) {
	if d.State.Terminal() {
		return nil, fmt.Errorf("%s is %s: %w", d.ID, d.State, ErrTerminal)
	}
	switch a {
	case ActionPause:
		if by == Unattended {
			// Recorded, the request would pause the next resume at once.
			return nil, fmt.Errorf("%s is %s and %w: nothing to pause ('drover resume %s' continues it, 'drover abort %s' ends it)",
				d.ID, d.State, ErrNotRunning, d.ID, d.ID)
		}
		return &Request{ID: d.ID, Pause: true, At: at}, nil
	case ActionResume:
		return &Request{ID: d.ID, Resume: true, At: at}, nil
	case ActionAbort:
		if AbortNow(d, by) {
			return &SetState{ID: d.ID, State: StateAborted, Error: AbortedByOperator, At: at}, nil
		}
		return &Request{ID: d.ID, Abort: true, At: at}, nil
	}
	return nil, fmt.Errorf("%q: %w", a, ErrUnknownAction)
}

// Resumable reports whether a resume continues d: a paused deployment, and
// an unattended one that did not finish (it was interrupted: its engine
// died with it). A supervised running deployment already has its engine.
func Resumable(d *Deployment, by Driver) bool {
	if by == Unattended {
		return !d.State.Terminal()
	}
	return d.State == StatePaused
}
