package raftstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/testwait"
	"github.com/hashicorp/raft"
)

// inmemCluster is three stores on raft's in-memory transport, which can cut
// a node off from its peers.
type inmemCluster struct {
	stores []*Store
	trans  []*raft.InmemTransport
}

// inmemTiming is fast but not OpenSingle's 10 ms: three nodes on a busy
// machine (a test run beside others) must not lose their leader to a
// scheduling hiccup in the middle of adding a voter.
var inmemTiming = Timing{Heartbeat: 100 * time.Millisecond, Election: 100 * time.Millisecond, LeaderLease: 50 * time.Millisecond, Commit: 20 * time.Millisecond}

func newInmemCluster(t *testing.T) *inmemCluster {
	t.Helper()
	c := &inmemCluster{}
	for i := range 3 {
		id := fmt.Sprintf("n%d", i+1)
		_, tr := raft.NewInmemTransport(raft.ServerAddress(id))
		s, err := open(Options{Dir: t.TempDir(), NodeID: id, Bootstrap: i == 0}, inmemTiming,
			func(*Store) (raft.Transport, error) { return tr, nil })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		c.stores, c.trans = append(c.stores, s), append(c.trans, tr)
	}
	c.connect()
	testwait.For(t, "n1 to lead", c.stores[0].IsLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range c.stores[1:] {
		if err := c.stores[0].AddVoter(ctx, s.nodeID, s.nodeID); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *inmemCluster) connect() {
	for i, a := range c.trans {
		for j, b := range c.trans {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
}

// isolate cuts store i off from the others, both ways.
func (c *inmemCluster) isolate(i int) {
	c.trans[i].DisconnectAll()
	for j, tr := range c.trans {
		if j != i {
			tr.Disconnect(c.trans[i].LocalAddr())
		}
	}
}

// leader waits until a store other than skip leads, and returns its index.
func (c *inmemCluster) leader(t *testing.T, skip int) int {
	t.Helper()
	idx := -1
	testwait.For(t, "a leader", func() bool {
		for i, s := range c.stores {
			if i != skip && s.IsLeader() {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

// TestRepeatAcrossLeaders: a write repeated with its request key on another
// leader is answered with its first result when the first was committed,
// and applied when it was not; a leader lost while committing says the
// outcome is unknown rather than "not the leader" (which says not done).
func TestRepeatAcrossLeaders(t *testing.T) {
	c := newInmemCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	create := func(s *Store, key, id string) error {
		return s.Apply(WithRequestKey(ctx, key), &deploy.CreateDeployment{Deployment: deployment(id, "v1", "host-"+key), At: t0})
	}

	// Committed, then the leader changes: the repeat finds it.
	if err := create(c.stores[0], "k1", "d1"); err != nil {
		t.Fatal(err)
	}
	// raft gives a transfer one election timeout (10 ms here): on a busy
	// machine the target may not catch up in time, and the transfer is
	// simply asked again, as an operator would.
	for i := 0; ; i++ {
		err := c.stores[0].raft.LeadershipTransfer().Error()
		if err == nil || !c.stores[0].IsLeader() {
			break
		}
		if i == 50 {
			t.Fatal(err)
		}
	}
	l := c.leader(t, 0)
	err := create(c.stores[l], "k1", "d1-repeat")
	if got, ok := Applied(err); !ok || got != "d1" {
		t.Fatalf("repeat on the new leader: %v (result %q), want ErrAlreadyApplied with d1", err, got)
	}

	// Leadership lost while committing: the leader, cut off, appends the
	// entry and steps down before a quorum has it.
	c.isolate(l)
	err = create(c.stores[l], "k2", "d2-lost")
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("apply on a leader cut off: %v, want ErrOutcomeUnknown", err)
	}
	// The others elect a leader; the entry never reached them, so the
	// repeat is applied. With 10 ms election timeouts a busy machine can
	// move leadership again under the repeat: the client then repeats once
	// more with the same key, which is what the key is for.
	for i := 0; ; i++ {
		n := c.leader(t, l)
		err := create(c.stores[n], "k2", "d2")
		if got, ok := Applied(err); err == nil || (ok && got == "d2") {
			break
		}
		if (!errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, ErrNotLeader)) || i == 20 {
			t.Fatalf("repeat of a write that was lost: %v", err)
		}
	}
	c.connect()
	for i, s := range c.stores {
		testwait.For(t, fmt.Sprintf("n%d to apply d2", i+1), func() bool { _, err := s.Deployment("d2"); return err == nil })
		if _, err := s.Deployment("d2-lost"); err == nil {
			t.Errorf("n%d: the lost write was applied too", i+1)
		}
		if _, err := s.Deployment("d1-repeat"); err == nil {
			t.Errorf("n%d: the repeat of k1 was applied", i+1)
		}
	}
}
