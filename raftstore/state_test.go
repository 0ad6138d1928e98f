package raftstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/hashicorp/raft"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func deployment(id, version string, hosts ...string) deploy.Deployment {
	return deploy.Deployment{ID: id, Name: "app-" + id, Version: version, Kind: deploy.KindDeploy, Batches: [][]string{hosts}}
}

// applyAll runs commands through the same encode/decode path as the log.
func applyAll(t *testing.T, s *State, cmds ...deploy.Command) error {
	t.Helper()
	for _, c := range cmds {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		dc, err := decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.apply(dc); err != nil {
			return err
		}
	}
	return nil
}

func done(id, host string, phase deploy.Phase) *deploy.SetHostStage {
	return &deploy.SetHostStage{ID: id, Host: host, Stage: deploy.StageDone, Phase: phase, At: t0}
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		cmds    []deploy.Command
		wantErr error
		check   func(t *testing.T, s *State)
	}{
		{
			name: "create locks hosts",
			cmds: []deploy.Command{&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a", "b"), At: t0}},
			check: func(t *testing.T, s *State) {
				for _, h := range []string{"a", "b"} {
					if s.Hosts[h].Lock != "d1" {
						t.Errorf("%s lock = %q", h, s.Hosts[h].Lock)
					}
				}
				if got := s.Deployments["d1"].Hosts["a"].Stage; got != deploy.StagePending {
					t.Errorf("stage = %s", got)
				}
			},
		},
		{
			name: "second deployment on a locked host is refused",
			cmds: []deploy.Command{
				&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a", "b"), At: t0},
				&deploy.CreateDeployment{Deployment: deployment("d2", "v2", "b", "c"), At: t0},
			},
			wantErr: deploy.ErrHostLocked,
		},
		{
			name: "one running deployment per name",
			cmds: []deploy.Command{
				&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0},
				&deploy.CreateDeployment{Deployment: deploy.Deployment{ID: "d2", Name: "app-d1", Version: "v2", Batches: [][]string{{"b"}}}, At: t0},
			},
			wantErr: deploy.ErrNameInUse,
		},
		{
			name: "terminal state releases locks",
			cmds: []deploy.Command{
				&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0},
				&deploy.SetState{ID: "d1", State: deploy.StateAborted, At: t0},
				&deploy.CreateDeployment{Deployment: deployment("d2", "v2", "a"), At: t0},
			},
			check: func(t *testing.T, s *State) {
				if s.Hosts["a"].Lock != "d2" {
					t.Errorf("lock = %q", s.Hosts["a"].Lock)
				}
			},
		},
		{
			name: "duplicate id",
			cmds: []deploy.Command{
				&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0},
				&deploy.SetState{ID: "d1", State: deploy.StateSucceeded, At: t0},
				&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0},
			},
			wantErr: deploy.ErrExists,
		},
		{
			name: "done rollout moves current to previous",
			cmds: []deploy.Command{
				&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0},
				done("d1", "a", deploy.PhaseRollout),
				&deploy.SetState{ID: "d1", State: deploy.StateSucceeded, At: t0},
				&deploy.CreateDeployment{Deployment: deployment("d2", "v2", "a"), At: t0},
				done("d2", "a", deploy.PhaseRollout),
			},
			check: func(t *testing.T, s *State) {
				if r := s.Hosts["a"]; r.Current != "v2" || r.Previous != "v1" {
					t.Errorf("record = %+v", r)
				}
				if hp := s.Deployments["d2"].Hosts["a"]; hp.FromCurrent != "v1" || !hp.Touched {
					t.Errorf("progress = %+v", hp)
				}
			},
		},
		{
			name: "rollback restores exactly the records before the deployment",
			cmds: []deploy.Command{
				&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0},
				done("d1", "a", deploy.PhaseRollout),
				&deploy.SetState{ID: "d1", State: deploy.StateSucceeded, At: t0},
				&deploy.CreateDeployment{Deployment: deployment("d2", "v2", "a"), At: t0},
				done("d2", "a", deploy.PhaseRollout),
				&deploy.SetState{ID: "d2", State: deploy.StateSucceeded, At: t0},
				&deploy.CreateDeployment{Deployment: deployment("d3", "v3", "a"), At: t0},
				done("d3", "a", deploy.PhaseRollout),
				&deploy.SetState{ID: "d3", State: deploy.StateRollingBack, At: t0},
				&deploy.SetHostStage{ID: "d3", Host: "a", Stage: deploy.StageDrain, Phase: deploy.PhaseRollback, Target: "v2", At: t0},
				done("d3", "a", deploy.PhaseRollback),
				&deploy.SetState{ID: "d3", State: deploy.StateRolledBack, At: t0},
			},
			check: func(t *testing.T, s *State) {
				if r := s.Hosts["a"]; r.Current != "v2" || r.Previous != "v1" || r.Lock != "" {
					t.Errorf("record = %+v", r)
				}
			},
		},
		{
			name: "operator rollback leaves no previous",
			cmds: []deploy.Command{
				&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0},
				done("d1", "a", deploy.PhaseRollout),
				&deploy.SetState{ID: "d1", State: deploy.StateSucceeded, At: t0},
				&deploy.CreateDeployment{Deployment: deployment("d2", "v2", "a"), At: t0},
				done("d2", "a", deploy.PhaseRollout),
				&deploy.SetState{ID: "d2", State: deploy.StateSucceeded, At: t0},
				&deploy.CreateDeployment{Deployment: deploy.Deployment{ID: "r1", Kind: deploy.KindRollback, Of: "d2", Version: "v1", Batches: [][]string{{"a"}}}, At: t0},
				done("r1", "a", deploy.PhaseRollout),
			},
			check: func(t *testing.T, s *State) {
				if r := s.Hosts["a"]; r.Current != "v1" || r.Previous != "" {
					t.Errorf("record = %+v", r)
				}
			},
		},
		{
			name: "stage of an ended deployment is refused",
			cmds: []deploy.Command{
				&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0},
				&deploy.SetState{ID: "d1", State: deploy.StateFailed, At: t0},
				done("d1", "a", deploy.PhaseRollout),
			},
			wantErr: deploy.ErrTerminal,
		},
		{
			name:    "unknown deployment",
			cmds:    []deploy.Command{done("nope", "a", deploy.PhaseRollout)},
			wantErr: deploy.ErrUnknownDeployment,
		},
		{
			name: "unknown host",
			cmds: []deploy.Command{
				&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0},
				done("d1", "zz", deploy.PhaseRollout),
			},
			wantErr: deploy.ErrUnknownHost,
		},
		{
			name: "pause request then resume",
			cmds: []deploy.Command{
				&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0},
				&deploy.Request{ID: "d1", Pause: true, At: t0},
				&deploy.SetState{ID: "d1", State: deploy.StatePaused, At: t0},
				&deploy.Request{ID: "d1", Resume: true, At: t0},
			},
			check: func(t *testing.T, s *State) {
				if d := s.Deployments["d1"]; d.State != deploy.StateRunning || d.PauseRequested {
					t.Errorf("deployment = %s pause=%v", d.State, d.PauseRequested)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newState()
			err := applyAll(t, s, tt.cmds...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	for _, b := range []string{``, `{`, `{"t":99,"v":1,"p":{}}`, `{"t":2,"v":1,"p":"x"}`} {
		if _, err := decode([]byte(b)); !errors.Is(err, deploy.ErrBadCommand) {
			t.Errorf("decode(%q) = %v, want ErrBadCommand", b, err)
		}
	}
}

type sink struct {
	bytes.Buffer
	cancelled bool
}

func (s *sink) ID() string    { return "test" }
func (s *sink) Close() error  { return nil }
func (s *sink) Cancel() error { s.cancelled = true; return nil }

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	f := newFSM()
	cmds := []deploy.Command{
		&deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a", "b"), At: t0},
		done("d1", "a", deploy.PhaseRollout),
		&deploy.SetHostStage{ID: "d1", Host: "b", Stage: deploy.StageVerify, Phase: deploy.PhaseRollout, At: t0.Add(time.Second)},
	}
	for i, c := range cmds {
		b, _ := Encode(c)
		if res := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: b}); res != nil {
			t.Fatalf("apply %d: %v", i, res)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var out sink
	if err := snap.Persist(&out); err != nil {
		t.Fatal(err)
	}
	g := newFSM()
	// Restore must discard whatever was there before.
	b, _ := Encode(&deploy.CreateDeployment{Deployment: deployment("stale", "v9", "z"), At: t0})
	g.Apply(&raft.Log{Type: raft.LogCommand, Data: b})
	if err := g.Restore(io.NopCloser(&out)); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(f.state)
	got, _ := json.Marshal(g.state)
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("restored state differs:\n got %s\nwant %s", got, want)
	}
}
