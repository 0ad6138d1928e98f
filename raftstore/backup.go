package raftstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/hashicorp/raft"
)

// ErrBusy means an operation needs the cluster idle (no running deployment).
var ErrBusy = errors.New("a deployment is running")

// Backup writes a consistent copy of the whole state (the same bytes as a
// Raft snapshot) to w. Tokens are in it as hashes only.
func (s *Store) Backup(w io.Writer) error {
	snap, err := s.fsm.Snapshot()
	if err != nil {
		return err
	}
	return snap.(snapshot).writeTo(w)
}

// Restore replaces the cluster's state with a backup, through Raft: the
// leader installs it as a snapshot and every follower follows. It refuses
// while a deployment runs (its engine would act on a state that vanished),
// and refuses bytes that are not a drover state, more than MaxBackupBytes,
// or a state that breaks apply's rules (ErrInconsistent), before Raft
// installs anything.
func (s *Store) Restore(ctx context.Context, r io.Reader) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	for _, d := range s.Deployments() {
		if !d.State.Terminal() && d.State != deploy.StatePaused {
			return fmt.Errorf("restore: %s is %s: %w", d.ID, d.State, ErrBusy)
		}
	}
	b, err := io.ReadAll(io.LimitReader(r, backupLimit+1))
	if err != nil {
		return fmt.Errorf("read backup: %w", err)
	}
	if int64(len(b)) > backupLimit {
		return fmt.Errorf("%w: the backup is larger than %d bytes", deploy.ErrBadCommand, backupLimit)
	}
	var st State
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil || st.Deployments == nil {
		return fmt.Errorf("%w: not a drover backup (%v)", deploy.ErrBadCommand, err)
	}
	// Every node would install it and fail at the same entry: judge it
	// whole, here, before Raft sees it.
	if err := st.validate(); err != nil {
		return fmt.Errorf("%w: refused backup: %w", deploy.ErrBadCommand, err)
	}
	timeout := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	// raft refuses a restore while a membership change is uncommitted
	// ("wait until the configuration entry at N has been applied"): a
	// barrier first waits for whatever the log holds to be applied.
	if err := s.raft.Barrier(timeout).Error(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := s.raft.Restore(&raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(b))}, bytes.NewReader(b), timeout); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}
