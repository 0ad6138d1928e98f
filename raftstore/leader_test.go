package raftstore

import (
	"context"
	"testing"

	"github.com/hashicorp/raft"
)

// When a leader steps down, raft announces "no leader" before it changes
// its own state, so a waiter woken by that announcement may still see
// IsLeader true; the state change that follows must fire the signal too,
// or that waiter (an event stream, a forwarded request) sleeps through
// the step down.
func TestLeaderEventIncludesRoleChanges(t *testing.T) {
	tests := []struct {
		data any
		want bool
	}{
		{raft.LeaderObservation{LeaderID: "n2"}, true},
		{raft.RaftState(raft.Follower), true},
		{raft.RaftState(raft.Candidate), true},
		{raft.RequestVoteRequest{}, false},
		{raft.PeerObservation{}, false},
	}
	for _, tc := range tests {
		if got := leaderEvent(&raft.Observation{Data: tc.data}); got != tc.want {
			t.Errorf("%T: fires %v, want %v", tc.data, got, tc.want)
		}
	}
}

// A leader serves once its barrier has applied everything committed
// before its term, and says so on the leader signal.
func TestServingAfterBarrier(t *testing.T) {
	n := startCluster(t, newTestCA(t), 1, nil)[0]
	if !n.IsLeader() || n.Serving() {
		t.Fatalf("leader %v, serving %v before its barrier; want a leader not yet serving", n.IsLeader(), n.Serving())
	}
	changed := n.LeaderChanged()
	if err := n.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !n.Serving() {
		t.Fatal("not serving after the barrier")
	}
	select {
	case <-changed:
	default:
		t.Fatal("the leader signal did not fire when the leader began serving")
	}
}
