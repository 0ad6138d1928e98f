package raftstore

import (
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
