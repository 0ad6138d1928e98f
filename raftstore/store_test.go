package raftstore

import (
	"context"
	"errors"
	"testing"
)

func TestStorePersistsAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenSingle(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, &CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, done("d1", "a", PhaseRollout)); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, &CreateDeployment{Deployment: deployment("d2", "v2", "a"), At: t0}); !errors.Is(err, ErrHostLocked) {
		t.Fatalf("second create on locked host: %v", err)
	}

	// A second process on the same data dir is told so, quickly.
	if _, err := OpenSingle(ctx, Options{Dir: dir}); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("open while in use: %v", err)
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, &SetState{ID: "d1", State: StateSucceeded, At: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: snapshot plus the log after it.
	s, err = OpenSingle(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, err := s.Deployment("d1")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != StateSucceeded || d.Hosts["a"].Stage != StageDone {
		t.Fatalf("after restart: state=%s stage=%s", d.State, d.Hosts["a"].Stage)
	}
	if r := s.HostRecord("a"); r.Current != "v1" || r.Lock != "" {
		t.Fatalf("host record after restart: %+v", r)
	}
}
