package raftstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/testwait"
)

// A backup taken from one cluster restores the state on every node of
// another (a cluster rebuilt after a disaster), and garbage is refused.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t)
	src := startCluster(t, ca, 1, nil)
	for _, id := range []string{"a", "b"} {
		if err := src[0].Apply(ctx, clusterDeployment(id)); err != nil {
			t.Fatal(err)
		}
		if err := src[0].Apply(ctx, &deploy.SetState{ID: id, State: deploy.StateSucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	var backup bytes.Buffer
	if err := src[0].Backup(&backup); err != nil {
		t.Fatal(err)
	}

	dst := startCluster(t, ca, 3, nil)
	if err := dst[0].Apply(ctx, clusterDeployment("lost")); err != nil {
		t.Fatal(err)
	}
	if err := dst[0].Restore(ctx, bytes.NewReader(backup.Bytes())); !errors.Is(err, ErrBusy) {
		t.Fatalf("restore with a running deployment: %v, want ErrBusy", err)
	}
	if err := dst[0].Apply(ctx, &deploy.SetState{ID: "lost", State: deploy.StateAborted}); err != nil {
		t.Fatal(err)
	}
	if err := dst[0].Restore(ctx, strings.NewReader(`{"not":"a backup"}`)); !errors.Is(err, deploy.ErrBadCommand) {
		t.Fatalf("restore of garbage: %v, want ErrBadCommand", err)
	}
	if err := dst[1].Restore(ctx, bytes.NewReader(backup.Bytes())); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("restore on a follower: %v, want ErrNotLeader", err)
	}
	if err := dst[0].Restore(ctx, bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	for _, n := range dst {
		testwait.For(t, "restored state on "+n.NodeID(), func() bool {
			return hasDeployment(n, "a") && hasDeployment(n, "b") && !hasDeployment(n, "lost")
		})
	}
	// The cluster goes on after the restore.
	if err := dst[0].Apply(ctx, clusterDeployment("next")); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, "next", dst...)
}
