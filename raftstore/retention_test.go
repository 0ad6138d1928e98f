package raftstore

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
)

// Prune keeps the newest finished deployments, every unfinished one and
// what an unfinished rollback reverts; spent and expired tokens go after
// their grace (security.md, finding 9).
func TestPrune(t *testing.T) {
	build := func(t *testing.T) *State {
		s := newState()
		var cmds []deploy.Command
		for _, id := range []string{"d1", "d2", "d3", "d4", "d5"} {
			cmds = append(cmds, &deploy.CreateDeployment{Deployment: deployment(id, "v1", "h-"+id), At: t0},
				&deploy.SetState{ID: id, State: deploy.StateSucceeded, At: t0})
		}
		rb := deployment("r1", "rollback of d1", "h-d1")
		rb.Name, rb.Kind, rb.Of = "app-d1", deploy.KindRollback, "d1"
		cmds = append(cmds,
			&deploy.CreateDeployment{Deployment: deployment("p1", "v2", "h-p1"), At: t0},
			&deploy.SetState{ID: "p1", State: deploy.StatePaused, At: t0},
			&deploy.CreateDeployment{Deployment: rb, At: t0},
			&PutToken{Token: Token{Name: "spent-old", Role: RoleAgentJoin, Hash: "a", Created: t0}},
			&SpendToken{Hash: "a", Role: RoleAgentJoin, At: t0},
			&PutToken{Token: Token{Name: "spent-new", Role: RoleAgentJoin, Hash: "b", Created: t0}},
			&SpendToken{Hash: "b", Role: RoleAgentJoin, At: t0.Add(47 * time.Hour)},
			&PutToken{Token: Token{Name: "expired", Role: RoleRead, Hash: "c", Created: t0, Expires: t0.Add(time.Hour)}},
			&PutToken{Token: Token{Name: "ops", Role: RoleManage, Hash: "d", Created: t0}},
		)
		if err := applyAll(t, s, cmds...); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := build(t)
	if err := applyAll(t, s, &deploy.Prune{KeepFinished: 2, At: t0.Add(48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// d1 stays (r1 reverts it); of d2..d5 the newest two.
	if want := []string{"d1", "d4", "d5", "p1", "r1"}; !slices.Equal(s.Order, want) {
		t.Errorf("order = %v, want %v", s.Order, want)
	}
	if got := slices.Sorted(maps.Keys(s.Deployments)); !slices.Equal(got, []string{"d1", "d4", "d5", "p1", "r1"}) {
		t.Errorf("deployments = %v", got)
	}
	if got := slices.Sorted(maps.Keys(s.Tokens)); !slices.Equal(got, []string{"ops", "spent-new"}) {
		t.Errorf("tokens = %v, want ops and spent-new", got)
	}
	if err := s.validate(); err != nil {
		t.Errorf("pruned state is inconsistent: %v", err)
	}
	// Deterministic: the same log gives the same state.
	s2 := build(t)
	if err := applyAll(t, s2, &deploy.Prune{KeepFinished: 2, At: t0.Add(48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(s)
	b, _ := json.Marshal(s2)
	if string(a) != string(b) {
		t.Error("two nodes applying the same prune differ")
	}
	if err := applyAll(t, s, &deploy.Prune{KeepFinished: -1, At: t0}); err == nil {
		t.Error("a negative keep was accepted")
	}
}

// A prune with nothing to drop is not written: every submit applies one.
func TestPruneWithNothingToDropWritesNothing(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSingle(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := s.Stats().LastLogIndex
	if err := s.Apply(ctx, &deploy.Prune{At: t0}); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().LastLogIndex; got != before {
		t.Fatalf("an empty prune was written: last log index %d -> %d", before, got)
	}
	if err := s.Apply(ctx, &deploy.Prune{KeepFinished: -1, At: t0}); !errors.Is(err, deploy.ErrBadCommand) {
		t.Fatalf("a negative keep: err = %v, want ErrBadCommand", err)
	}
	if err := s.Apply(ctx, &PutToken{Token: Token{Name: "old", Role: RoleRead, Hash: "h", Created: t0, Expires: t0}}); err != nil {
		t.Fatal(err)
	}
	before = s.Stats().LastLogIndex
	if err := s.Apply(ctx, &deploy.Prune{At: t0.Add(SpentTokenGrace)}); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().LastLogIndex; got != before+1 {
		t.Fatalf("a prune with a token to drop: last log index %d -> %d, want one entry", before, got)
	}
	if toks := s.Tokens(); len(toks) != 0 {
		t.Fatalf("tokens after prune = %v", toks)
	}
}

// A watcher resuming before events that were trimmed is told so, once,
// instead of silently skipping them.
func TestEventsAfterTrimmed(t *testing.T) {
	s := newState()
	if err := applyAll(t, s, &deploy.CreateDeployment{Deployment: deployment("old", "v1", "a"), At: t0}); err != nil {
		t.Fatal(err)
	}
	for range deploy.MaxEvents {
		if err := applyAll(t, s, &deploy.Request{ID: "old", Pause: true, At: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := applyAll(t, s, &deploy.CreateDeployment{Deployment: deployment("new", "v1", "b"), At: t0}); err != nil {
		t.Fatal(err)
	}
	if s.TrimmedThrough == 0 {
		t.Fatal("nothing was trimmed")
	}
	tests := []struct {
		name    string
		id      string
		after   uint64
		trimmed bool
	}{
		{"from the start", "", 0, true},
		{"resume before the trim", "old", 1, true},
		{"resume after the trim", "", s.TrimmedThrough, false},
		{"a deployment born after the trim", "new", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs := s.EventsAfter(tc.id, tc.after)
			got := len(evs) > 0 && evs[0].Kind == deploy.EvTrimmed
			if got != tc.trimmed {
				t.Fatalf("first event %+v; want trimmed=%v", evs[0], tc.trimmed)
			}
			if got && (evs[0].Seq != s.TrimmedThrough || !strings.Contains(evs[0].Message, "no longer kept")) {
				t.Fatalf("marker %+v", evs[0])
			}
			for i := 1; i < len(evs); i++ {
				if evs[i].Seq <= evs[i-1].Seq {
					t.Fatalf("events out of order at %d", i)
				}
			}
		})
	}
}

// Snapshot copies under the lock and encodes in Persist: commands applied
// in between do not leak into the snapshot.
func TestSnapshotIsACopy(t *testing.T) {
	f := newFSM()
	if err := applyAll(t, f.state, &deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0}); err != nil {
		t.Fatal(err)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := applyAll(t, f.state, done("d1", "a", deploy.PhaseRollout), &deploy.SetState{ID: "d1", State: deploy.StateSucceeded, At: t0}); err != nil {
		t.Fatal(err)
	}
	var out sink
	if err := snap.Persist(&out); err != nil {
		t.Fatal(err)
	}
	var got State
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if d := got.Deployments["d1"]; d.State != deploy.StateRunning || d.Hosts["a"].Stage != deploy.StagePending || got.Hosts["a"].Current != "" || len(got.Events) != 1 {
		t.Fatalf("the snapshot saw later commands: %+v %+v", d, got.Hosts["a"])
	}
}
