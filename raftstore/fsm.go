package raftstore

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/drover-dev/drover/deploy"
	"github.com/hashicorp/raft"
)

// fsm adapts State to raft.FSM. It only decodes and locks: the state
// changes themselves are plain code in commands.go, tested without Raft.
type fsm struct {
	mu    sync.RWMutex
	state *State
	// onApply, when set, is told after each applied command (outside the
	// lock) so that watchers can wake up. It must not block.
	onApply func()
}

func newFSM() *fsm { return &fsm{state: newState()} }

// Apply implements raft.FSM. Its result is nil or the command's error.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, key, err := decodeKeyed(l.Data)
	if err != nil {
		return err
	}
	f.mu.Lock()
	err = f.state.applyOnce(c, key)
	f.mu.Unlock()
	if f.onApply != nil {
		f.onApply()
	}
	return err
}

// Snapshot implements raft.FSM. Under the read lock it only copies what
// apply changes in place (deployments' progress, host records, tokens...);
// the plans and events it shares are never modified after they are
// recorded. Persist encodes the copy while commands go on being applied.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return snapshot{f.state.snapshotCopy()}, nil
}

// Restore implements raft.FSM, replacing all state.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s := newState()
	if err := json.NewDecoder(rc).Decode(s); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if s.Deployments == nil {
		s.Deployments = map[string]*deploy.Deployment{}
	}
	if s.Hosts == nil {
		s.Hosts = map[string]*deploy.HostRecord{}
	}
	if s.Nodes == nil {
		s.Nodes = map[string]*Node{}
	}
	if s.Tokens == nil {
		s.Tokens = map[string]*Token{}
	}
	if s.Agents == nil {
		s.Agents = map[string]*Agent{}
	}
	// A snapshot this node cannot apply commands on is refused; raft then
	// keeps the state it had (or tries an older snapshot at start).
	if err := s.validate(); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
	if f.onApply != nil {
		f.onApply()
	}
	return nil
}

// safeApply is apply, with a panic (a state that breaks a rule validate
// did not foresee) turned into the command's error: every node meets it
// at the same entry, so they stay alike, and none of them crashes on it
// at every restart.
func (s *State) safeApply(c deploy.Command) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %T could not be applied: %v", deploy.ErrInconsistent, c, r)
		}
	}()
	return s.apply(c)
}

// snapshot is a copy of the state, encoded when persisted.
type snapshot struct{ st *State }

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.writeTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

// writeTo encodes the state: the bytes of a snapshot and of a backup.
func (s snapshot) writeTo(w io.Writer) error {
	b, err := json.Marshal(s.st)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	_, err = w.Write(b)
	return err
}

func (snapshot) Release() {}
