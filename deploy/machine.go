package deploy

import (
	"errors"
	"fmt"
)

// ErrIllegalTransition means a command would move a deployment between two
// states that its state machine does not join.
var ErrIllegalTransition = errors.New("illegal state transition")

// transitions are the legal moves of a deployment's state. A terminal
// state has none. Every move the engine, the coordinator and the CLI make
// is here (and nothing else is, so that an old log replays the same):
//   - running: the engine pauses at a safe point, starts rolling back when
//     the failure budget is spent, or finishes; an abort ends it;
//   - paused: a resume (or a new run) continues it, an abort ends it;
//   - rolling_back: the engine finishes it; an abort ends it.
var transitions = map[DeploymentState][]DeploymentState{
	StateRunning:     {StatePaused, StateRollingBack, StateSucceeded, StateFailed, StateAborted},
	StatePaused:      {StateRunning, StateAborted},
	StateRollingBack: {StateRolledBack, StateFailed, StateAborted},
}

// States lists every deployment state, in the order a reader meets them.
var States = []DeploymentState{StateRunning, StatePaused, StateRollingBack,
	StateSucceeded, StateFailed, StateRolledBack, StateAborted}

// Known reports whether s is one of States.
func (s DeploymentState) Known() bool {
	for _, k := range States {
		if s == k {
			return true
		}
	}
	return false
}

// CanMove returns nil when a deployment may go from state from to state
// to, else an error matching ErrIllegalTransition (and ErrTerminal when
// from has ended).
func CanMove(from, to DeploymentState) error {
	if from.Terminal() {
		return fmt.Errorf("%w: %w: %s to %s", ErrTerminal, ErrIllegalTransition, from, to)
	}
	for _, s := range transitions[from] {
		if s == to {
			return nil
		}
	}
	return fmt.Errorf("%w: %s to %s", ErrIllegalTransition, from, to)
}
