// Package raftstore is drover's replicated state: a hashicorp/raft node with
// its log and stable store in bbolt, file snapshots, and the deterministic
// state machine that records deployments, host stages, stable releases and
// host locks.
package raftstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// ErrDataDirInUse is returned by Open when another process holds the data dir.
var ErrDataDirInUse = errors.New("data dir is in use by another drover process")

// Options configure a Store.
type Options struct {
	Dir    string    // data dir: raft.db (log + stable store) and snapshots/
	NodeID string    // default "node1"
	Log    io.Writer // raft's own log; default Dir/raft.log
}

// Store is a Raft node and its state machine.
type Store struct {
	raft    *raft.Raft
	fsm     *fsm
	bolt    *raftboltdb.BoltStore
	logFile *os.File

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every apply
}

// OpenSingle opens (or creates) a one-node cluster in opts.Dir and waits
// until it leads. It is the embedded coordinator of the CLI.
func OpenSingle(ctx context.Context, opts Options) (*Store, error) {
	if opts.NodeID == "" {
		opts.NodeID = "node1"
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	s := &Store{fsm: newFSM(), changed: make(chan struct{})}
	s.fsm.onApply = s.notify

	logw := opts.Log
	if logw == nil {
		f, err := os.OpenFile(filepath.Join(opts.Dir, "raft.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open raft log: %w", err)
		}
		s.logFile, logw = f, f
	}
	fail := func(err error) (*Store, error) {
		s.Close()
		return nil, err
	}

	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(opts.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 300 * time.Millisecond, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fail(fmt.Errorf("%s: %w", opts.Dir, ErrDataDirInUse))
		}
		return fail(fmt.Errorf("open raft.db: %w", err))
	}
	s.bolt = bolt
	snaps, err := raft.NewFileSnapshotStore(opts.Dir, 2, logw)
	if err != nil {
		return fail(fmt.Errorf("open snapshots: %w", err))
	}

	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(opts.NodeID)
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: logw, Level: hclog.Info})
	// One node has nobody to wait for: short timeouts make the CLI start
	// in a fraction of a second instead of the LAN defaults' 1-2 s.
	cfg.HeartbeatTimeout = 100 * time.Millisecond
	cfg.ElectionTimeout = 100 * time.Millisecond
	cfg.LeaderLeaseTimeout = 100 * time.Millisecond
	cfg.SnapshotThreshold = 2048

	addr, trans := raft.NewInmemTransport(raft.ServerAddress(opts.NodeID))
	logs, err := raft.NewLogCache(512, bolt)
	if err != nil {
		return fail(fmt.Errorf("log cache: %w", err))
	}
	has, err := raft.HasExistingState(logs, bolt, snaps)
	if err != nil {
		return fail(fmt.Errorf("inspect raft state: %w", err))
	}
	if !has {
		conf := raft.Configuration{Servers: []raft.Server{{ID: cfg.LocalID, Address: addr}}}
		if err := raft.BootstrapCluster(cfg, logs, bolt, snaps, trans, conf); err != nil {
			return fail(fmt.Errorf("bootstrap: %w", err))
		}
	}
	r, err := raft.NewRaft(cfg, s.fsm, logs, bolt, snaps, trans)
	if err != nil {
		return fail(fmt.Errorf("start raft: %w", err))
	}
	s.raft = r
	if err := s.waitLeader(ctx); err != nil {
		return fail(err)
	}
	// Make sure every committed entry is applied before anyone reads.
	if err := r.Barrier(10 * time.Second).Error(); err != nil {
		return fail(fmt.Errorf("barrier: %w", err))
	}
	return s, nil
}

func (s *Store) waitLeader(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	obs := make(chan raft.Observation, 4)
	o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(o)
	defer s.raft.DeregisterObserver(o)
	// Raft sets the state to Leader before it announces the new leader, so
	// checking after each observation cannot miss it.
	for s.raft.State() != raft.Leader {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for leadership: %w", ctx.Err())
		case <-obs:
		}
	}
	return nil
}

// Close shuts the node down and releases the data dir.
func (s *Store) Close() error {
	var errs []error
	if s.raft != nil {
		errs = append(errs, s.raft.Shutdown().Error())
	}
	if s.bolt != nil {
		errs = append(errs, s.bolt.Close())
	}
	if s.logFile != nil {
		errs = append(errs, s.logFile.Close())
	}
	return errors.Join(errs...)
}

// Apply replicates c and returns once it is applied, with the command's own
// error (ErrHostLocked, ErrTerminal, ...) if it was refused.
func (s *Store) Apply(ctx context.Context, c Command) error {
	b, err := Encode(c)
	if err != nil {
		return err
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := s.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return fmt.Errorf("raft apply: %w", err)
	}
	if err, ok := f.Response().(error); ok {
		return err
	}
	return nil
}

// Snapshot forces a snapshot (used by backup and tests).
func (s *Store) Snapshot() error {
	return s.raft.Snapshot().Error()
}

func (s *Store) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Changed returns a channel closed at the next applied command.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Deployment returns a copy of one deployment.
func (s *Store) Deployment(id string) (Deployment, error) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	d := s.fsm.state.Deployments[id]
	if d == nil {
		return Deployment{}, fmt.Errorf("%s: %w", id, ErrUnknownDeployment)
	}
	return d.clone(), nil
}

// Deployments returns copies of all deployments, oldest first.
func (s *Store) Deployments() []Deployment {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	out := make([]Deployment, 0, len(s.fsm.state.Order))
	for _, id := range s.fsm.state.Order {
		out = append(out, s.fsm.state.Deployments[id].clone())
	}
	return out
}

// HostRecord returns what is known about a host (zero record if nothing).
func (s *Store) HostRecord(name string) HostRecord {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	if r := s.fsm.state.Hosts[name]; r != nil {
		return *r
	}
	return HostRecord{Name: name}
}

// Hosts returns every known host record, by name.
func (s *Store) Hosts() []HostRecord {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	out := make([]HostRecord, 0, len(s.fsm.state.Hosts))
	for _, k := range sortedKeys(s.fsm.state.Hosts) {
		out = append(out, *s.fsm.state.Hosts[k])
	}
	return out
}
