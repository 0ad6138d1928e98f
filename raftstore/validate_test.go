package raftstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/drover-dev/drover/deploy"
)

// stateWith is a state made by apply: d1 paused on hosts a and b, d2
// finished on c, a token, an agent and a node.
func stateWith(t *testing.T) *State {
	t.Helper()
	s := newState()
	err := applyAll(t, s,
		&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a", "b"), At: t0},
		&deploy.SetState{ID: "d1", State: deploy.StatePaused, At: t0},
		&deploy.CreateDeployment{Deployment: deployment("d2", "v1", "c"), At: t0},
		&deploy.SetState{ID: "d2", State: deploy.StateSucceeded, At: t0},
		&PutToken{Token: Token{Name: "ops", Role: RoleManage, Hash: "h", Created: t0}},
		&EnrollAgent{Name: "c", Serial: "01", At: t0},
		&RegisterNode{Node: Node{ID: "n1", RaftAddr: "r", HTTPAddr: "h"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A backup that decodes but breaks apply's rules is refused whole, each
// problem named (security.md, finding 8).
func TestValidateState(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *State)
		want   string // "" = consistent
	}{
		{"as applied", func(*State) {}, ""},
		{"paused deployment without its host record", func(s *State) { delete(s.Hosts, "a") },
			"deployment d1 is paused, but host a has no record locked by it"},
		{"lock held by a finished deployment", func(s *State) { s.Hosts["c"].Lock = "d2" },
			"host c: locked by d2, which is not an unfinished deployment"},
		{"a repair is a legal kind", func(s *State) { s.Deployments["d2"].Kind = deploy.KindRepair }, ""},
		{"unknown state", func(s *State) { s.Deployments["d2"].State = "exploded" }, `deployment d2: unknown state "exploded"`},
		{"unknown stage", func(s *State) { s.Deployments["d1"].Hosts["a"].Stage = "warp" }, `host a: unknown stage "warp"`},
		{"host in no batch", func(s *State) {
			s.Deployments["d1"].Hosts["z"] = &deploy.HostProgress{Name: "z", Stage: deploy.StagePending}
		},
			"deployment d1: host z is in no batch"},
		{"batch host without progress", func(s *State) { delete(s.Deployments["d1"].Hosts, "b") }, "host b has no progress record"},
		{"order names a ghost", func(s *State) { s.Order = append(s.Order, "d9") }, "order: d9 is not a deployment"},
		{"deployment missing from the order", func(s *State) { s.Order = s.Order[:1] }, "deployment d2: missing from the order"},
		{"two unfinished of one name", func(s *State) {
			d := s.Deployments["d1"].Clone()
			d.ID = "d3"
			s.Deployments["d3"], s.Order = &d, append(s.Order, "d3")
			s.Hosts["a"].Lock = "d3"
		}, `both unfinished deployments of "app-d1"`},
		{"nil deployment", func(s *State) { s.Deployments["dx"] = nil; s.Order = append(s.Order, "dx") }, "deployment dx: empty"},
		{"token of no role", func(s *State) { s.Tokens["ops"].Role = "root" }, "token ops"},
		{"events from the future", func(s *State) { s.Events[0].Seq = s.Seq + 5 }, "out of order"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stateWith(t)
			tc.mutate(s)
			err := s.validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if !errors.Is(err, deploy.ErrInconsistent) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate: %v\nwant ErrInconsistent with %q", err, tc.want)
			}
		})
	}
}

// The FSM refuses such a snapshot instead of installing it, and a command
// that meets a broken state is an error, not a panic on every node.
func TestFSMRefusesInconsistentState(t *testing.T) {
	s := stateWith(t)
	delete(s.Hosts, "a")
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	f := newFSM()
	if err := f.Restore(io.NopCloser(bytes.NewReader(b))); !errors.Is(err, deploy.ErrInconsistent) {
		t.Fatalf("fsm restore: %v, want ErrInconsistent", err)
	}
	// The same state reached anyway (an older snapshot, a bug): the command
	// that finishes the host fails cleanly.
	if err := s.safeApply(done("d1", "a", deploy.PhaseRollout)); !errors.Is(err, deploy.ErrInconsistent) {
		t.Fatalf("apply on a host without record: %v, want ErrInconsistent", err)
	}
}

// Restore on a live node refuses an inconsistent or oversized backup
// before Raft sees it; the cluster goes on.
func TestRestoreRefusesInconsistentBackup(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t)
	// One node: the refusal happens before Raft, so peers add nothing but
	// elections that a loaded machine can lose.
	nodes := startCluster(t, ca, 1, nil)
	if err := nodes[0].Apply(ctx, clusterDeployment("before")); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].Apply(ctx, &deploy.SetState{ID: "before", State: deploy.StateSucceeded}); err != nil {
		t.Fatal(err)
	}
	s := stateWith(t)
	delete(s.Hosts, "a")
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	err = nodes[0].Restore(ctx, bytes.NewReader(b))
	if !errors.Is(err, deploy.ErrBadCommand) || !errors.Is(err, deploy.ErrInconsistent) || !strings.Contains(err.Error(), "host a has no record") {
		t.Fatalf("restore: %v; want it refused as inconsistent", err)
	}
	old := backupLimit
	backupLimit = 1 << 10
	t.Cleanup(func() { backupLimit = old })
	big := `{"deployments":{},"order":[],"pad":"` + strings.Repeat("x", 2<<10) + `"}`
	if err := nodes[0].Restore(ctx, strings.NewReader(big)); !errors.Is(err, deploy.ErrBadCommand) || !strings.Contains(err.Error(), "larger than 1024 bytes") {
		t.Fatalf("restore of a big body: %v", err)
	}
	if hasDeployment(nodes[0], "d1") || !hasDeployment(nodes[0], "before") {
		t.Fatal("the refused backup was installed")
	}
	if err := nodes[0].Apply(ctx, clusterDeployment("after")); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, "after", nodes...)
}
