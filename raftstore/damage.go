package raftstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrCorrupt means a file of the data dir is damaged: the node cannot start
// from it. The error names the file; the way back is a fresh data dir that
// rejoins the cluster, or `drover cluster restore` from a backup.
var ErrCorrupt = errors.New("damaged")

// checkBolt reads every page that raft.db's buckets reach, before raft
// opens it: bbolt answers a damaged page with a panic (an assertion), often
// in a goroutine of its own where it cannot be recovered, and that killed
// the process with Go's exit code 2. Opening read-only skips bbolt's
// free-list rebuild (the goroutine that panics); the walk below then meets
// any damage in this goroutine, where it is recovered and named.
func checkBolt(path string) (err error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 300 * time.Millisecond})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return ErrDataDirInUse
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("open %s: %w", path, err)
	case err != nil:
		// Bad meta pages, a bad checksum, a file too short: the file.
		return fmt.Errorf("%s is %w: %v", path, ErrCorrupt, err)
	}
	defer db.Close()
	// A file cut short faults (SIGBUS) on the mapped pages past its end:
	// make that a panic of this goroutine, recovered below.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s is %w: %v", path, ErrCorrupt, r)
		}
	}()
	return db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bbolt.Bucket) error { return walkBucket(b) })
	})
}

// walkBucket visits every key of b and of the buckets nested in it, which
// touches (and so checks) every branch and leaf page they use.
func walkBucket(b *bbolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if nb := b.Bucket(k); nb != nil {
				return walkBucket(nb)
			}
		}
		return nil
	})
}
