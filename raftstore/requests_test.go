package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"testing"

	"github.com/drover-dev/drover/deploy"
	"github.com/hashicorp/raft"
)

// keyedStep is one command of a dedupe test, with its request key and what
// applying it must give.
type keyedStep struct {
	cmd        deploy.Command
	key        string
	wantErr    error
	wantResult string // for ErrAlreadyApplied
}

func TestApplyOnce(t *testing.T) {
	create := func(id string, hosts ...string) deploy.Command {
		return &deploy.CreateDeployment{Deployment: deployment(id, "v1", hosts...), At: t0}
	}
	tests := []struct {
		name  string
		steps []keyedStep
		check func(t *testing.T, s *State)
	}{
		{
			name: "a repeated submit returns the first deployment, not a conflict",
			steps: []keyedStep{
				{cmd: create("d1", "a"), key: "k1"},
				{cmd: create("d2", "a"), key: "k1", wantErr: ErrAlreadyApplied, wantResult: "d1"},
			},
			check: func(t *testing.T, s *State) {
				if len(s.Deployments) != 1 || s.Deployments["d1"] == nil {
					t.Errorf("deployments = %v, want d1 only", slices.Sorted(maps.Keys(s.Deployments)))
				}
			},
		},
		{
			name: "without a key the repeat is refused as before",
			steps: []keyedStep{
				{cmd: create("d1", "a")},
				{cmd: create("d2", "a"), wantErr: deploy.ErrHostLocked},
			},
		},
		{
			name: "another key is another request",
			steps: []keyedStep{
				{cmd: create("d1", "a"), key: "k1"},
				{cmd: create("d2", "a"), key: "k2", wantErr: deploy.ErrHostLocked},
			},
		},
		{
			name: "a refused command is not remembered: its repeat is judged afresh",
			steps: []keyedStep{
				{cmd: create("d1", "a"), key: "k1"},
				{cmd: create("d2", "a"), key: "k2", wantErr: deploy.ErrHostLocked},
				{cmd: &deploy.SetState{ID: "d1", State: deploy.StateSucceeded, At: t0}},
				{cmd: create("d2", "a"), key: "k2"},
			},
			check: func(t *testing.T, s *State) {
				if s.Hosts["a"].Lock != "d2" {
					t.Errorf("lock = %q, want d2", s.Hosts["a"].Lock)
				}
			},
		},
		{
			name: "a repeated abort of a deployment it ended is not an error about its end",
			steps: []keyedStep{
				{cmd: create("d1", "a")},
				{cmd: &deploy.SetState{ID: "d1", State: deploy.StateAborted, At: t0}, key: "k1"},
				{cmd: &deploy.SetState{ID: "d1", State: deploy.StateAborted, At: t0}, key: "k1", wantErr: ErrAlreadyApplied},
			},
		},
		{
			name: "a repeated pause records one request",
			steps: []keyedStep{
				{cmd: create("d1", "a")},
				{cmd: &deploy.Request{ID: "d1", Pause: true, At: t0}, key: "p"},
				{cmd: &deploy.Request{ID: "d1", Pause: true, At: t0}, key: "p", wantErr: ErrAlreadyApplied},
			},
			check: func(t *testing.T, s *State) {
				n := 0
				for _, ev := range s.Events {
					if ev.Kind == deploy.EvRequest {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%d request events, want 1", n)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newState()
			for i, st := range tc.steps {
				err := applyKeyed(t, s, st.cmd, st.key)
				if !errors.Is(err, st.wantErr) || (st.wantErr == nil && err != nil) {
					t.Fatalf("step %d: err = %v, want %v", i, err, st.wantErr)
				}
				if st.wantErr == ErrAlreadyApplied {
					if got, ok := Applied(err); !ok || got != st.wantResult {
						t.Fatalf("step %d: Applied = %q, %v; want %q", i, got, ok, st.wantResult)
					}
				}
			}
			if s.Seq != uint64(len(tc.steps)) {
				t.Errorf("Seq = %d, want %d (every command counts)", s.Seq, len(tc.steps))
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

// applyKeyed applies c with key through the log's encode/decode path.
func applyKeyed(t *testing.T, s *State, c deploy.Command, key string) error {
	t.Helper()
	b, err := encode(c, key)
	if err != nil {
		t.Fatal(err)
	}
	dc, k, err := decodeKeyed(b)
	if err != nil {
		t.Fatal(err)
	}
	return s.applyOnce(dc, k)
}

// TestRequestKeysBoundedAndSnapshotted: the oldest keys go once there are
// more than maxRequestKeys, and a snapshot carries the rest, so that a
// node restored from it answers a repeat the same way.
func TestRequestKeysBoundedAndSnapshotted(t *testing.T) {
	f := newFSM()
	apply := func(i uint64, c deploy.Command, key string) any {
		b, err := encode(c, key)
		if err != nil {
			t.Fatal(err)
		}
		return f.Apply(&raft.Log{Index: i, Type: raft.LogCommand, Data: b})
	}
	if r := apply(1, &deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0}, "first"); r != nil {
		t.Fatal(r)
	}
	for i := range maxRequestKeys {
		if r := apply(uint64(i+2), &deploy.Request{ID: "d1", Pause: true, At: t0}, fmt.Sprintf("k%d", i)); r != nil {
			t.Fatal(r)
		}
	}
	if n := len(f.state.Requests); n != maxRequestKeys {
		t.Fatalf("%d keys remembered, want %d", n, maxRequestKeys)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	f = g
	// The newest key is still known after the restore...
	last := fmt.Sprintf("k%d", maxRequestKeys-1)
	if err, _ := apply(9000, &deploy.Request{ID: "d1", Pause: true, At: t0}, last).(error); !errors.Is(err, ErrAlreadyApplied) {
		t.Errorf("repeat of %s after restore: %v, want ErrAlreadyApplied", last, err)
	}
	// ...the oldest was pruned: its repeat is applied afresh (here refused,
	// host a being locked by d1).
	if err, _ := apply(9001, &deploy.CreateDeployment{Deployment: deployment("d2", "v1", "a"), At: t0}, "first").(error); !errors.Is(err, deploy.ErrHostLocked) {
		t.Errorf("repeat of a pruned key: %v, want ErrHostLocked", err)
	}
}

type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

// TestBookkeepingTakesNoKey: a command applied on the way under a keyed
// context (the prune before a submit) leaves the key to the write itself,
// which is then recorded, and a repeat of the whole finds it.
func TestBookkeepingTakesNoKey(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSingle(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Something for the first prune to drop, so that it is written.
	if err := s.Apply(ctx, &PutToken{Token: Token{Name: "old", Role: RoleRead, Hash: "h", Created: t0, Expires: t0}}); err != nil {
		t.Fatal(err)
	}
	kctx := WithRequestKey(ctx, "submit-1")
	submit := func(id string) error {
		if err := s.Apply(kctx, &deploy.Prune{KeepFinished: 10, At: t0.Add(SpentTokenGrace)}); err != nil {
			t.Fatalf("prune: %v", err)
		}
		return s.Apply(kctx, &deploy.CreateDeployment{Deployment: deployment(id, "v1", "a"), At: t0})
	}
	if err := submit("d1"); err != nil {
		t.Fatalf("submit: %v", err)
	}
	if _, err := s.Deployment("d1"); err != nil {
		t.Fatal(err)
	}
	if got, ok := Applied(submit("d1-repeat")); !ok || got != "d1" {
		t.Fatalf("repeat: %q %v, want the first submit's d1", got, ok)
	}
}
