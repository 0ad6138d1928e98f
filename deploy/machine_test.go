package deploy

import (
	"errors"
	"testing"
)

// Every pair of states, legal or not: the table is the state machine.
func TestCanMove(t *testing.T) {
	legal := map[[2]DeploymentState]bool{
		{StateRunning, StatePaused}:         true,
		{StateRunning, StateRollingBack}:    true,
		{StateRunning, StateSucceeded}:      true,
		{StateRunning, StateFailed}:         true,
		{StateRunning, StateAborted}:        true,
		{StatePaused, StateRunning}:         true,
		{StatePaused, StateAborted}:         true,
		{StateRollingBack, StateRolledBack}: true,
		{StateRollingBack, StateFailed}:     true,
		{StateRollingBack, StateAborted}:    true,
	}
	for _, from := range States {
		for _, to := range States {
			err := CanMove(from, to)
			switch {
			case legal[[2]DeploymentState{from, to}]:
				if err != nil {
					t.Errorf("%s -> %s: %v, want legal", from, to, err)
				}
			case !errors.Is(err, ErrIllegalTransition):
				t.Errorf("%s -> %s: %v, want ErrIllegalTransition", from, to, err)
			case from.Terminal() != errors.Is(err, ErrTerminal):
				t.Errorf("%s -> %s: %v: ErrTerminal should match exactly when %s has ended", from, to, err, from)
			}
		}
	}
}

// SetState goes through the machine: an illegal move is refused and
// changes nothing.
func TestSetStateRefusesIllegalMove(t *testing.T) {
	l := NewLedger()
	create := &CreateDeployment{Deployment: Deployment{ID: "d1", Name: "web", Version: "v1", Batches: [][]string{{"a"}}}}
	if err := l.Apply(create); err != nil {
		t.Fatal(err)
	}
	if err := l.Apply(&SetState{ID: "d1", State: StatePaused}); err != nil {
		t.Fatal(err)
	}
	events := len(l.Events)
	err := l.Apply(&SetState{ID: "d1", State: StateSucceeded})
	if !errors.Is(err, ErrIllegalTransition) {
		t.Fatalf("paused -> succeeded: %v, want ErrIllegalTransition", err)
	}
	if d := l.Deployments["d1"]; d.State != StatePaused || len(l.Events) != events || l.Hosts["a"].Lock != "d1" {
		t.Errorf("refused move changed the ledger: state %s, %d events, lock %q", d.State, len(l.Events), l.Hosts["a"].Lock)
	}
}
