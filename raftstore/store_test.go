package raftstore

import (
	"context"
	"errors"
	"testing"

	"github.com/drover-dev/drover/deploy"
)

func TestStorePersistsAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenSingle(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, &deploy.CreateDeployment{Deployment: deployment("d1", "v1", "a"), At: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, done("d1", "a", deploy.PhaseRollout)); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, &deploy.CreateDeployment{Deployment: deployment("d2", "v2", "a"), At: t0}); !errors.Is(err, deploy.ErrHostLocked) {
		t.Fatalf("second create on locked host: %v", err)
	}

	// A second process on the same data dir is told so, quickly.
	if _, err := OpenSingle(ctx, Options{Dir: dir}); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("open while in use: %v", err)
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, &deploy.SetState{ID: "d1", State: deploy.StateSucceeded, At: t0}); err != nil {
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
	if d.State != deploy.StateSucceeded || d.Hosts["a"].Stage != deploy.StageDone {
		t.Fatalf("after restart: state=%s stage=%s", d.State, d.Hosts["a"].Stage)
	}
	if r := s.HostRecord("a"); r.Current != "v1" || r.Lock != "" {
		t.Fatalf("host record after restart: %+v", r)
	}
}
