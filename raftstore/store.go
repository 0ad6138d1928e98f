// Package raftstore carries drover's replicated state: a hashicorp/raft
// node with its log and stable store in bbolt, file snapshots, the command
// envelope on disk, and the FSM, a thin adapter that applies the domain's
// commands (package deploy: deployments, host stages, stable releases,
// host locks) and the cluster's own (members, tokens, agents, request keys).
package raftstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/notify"
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
	NodeID string    // default "node1" for OpenSingle; required by Open
	Log    io.Writer // raft's own log; default Dir/raft.log

	// RaftAddr is the bind address ("ip:port") of the TCP transport; ""
	// means the in-memory transport of OpenSingle. A port of 0 binds a
	// free port (see Store.Addr).
	RaftAddr string
	// Advertise is the address peers dial; default RaftAddr. It must name
	// a host (not 0.0.0.0 or ::); a port of 0 takes the bound port.
	Advertise string
	// ServerTLS accepts peers; the caller sets mutual authentication
	// (ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs). ClientTLS
	// dials peers (Certificates, RootCAs); ServerName is set per dial to
	// the host part of the peer's address. Both are required with RaftAddr.
	ServerTLS *tls.Config
	ClientTLS *tls.Config
	// Bootstrap forms a new one-voter cluster when the data dir holds no
	// Raft state. It is ignored, with a log line, when it does.
	Bootstrap bool
	// Timing tunes failure detection; zero fields take the defaults. For
	// Open: heartbeat 300ms, election 300ms, leader lease 200ms, commit
	// 20ms (lanTiming says why); for OpenSingle: 10ms each.
	Timing Timing
	// SnapshotThreshold is how many new log entries trigger a snapshot and
	// TrailingLogs how many entries a snapshot leaves in the log (so that a
	// slightly lagging follower needs no snapshot). Zero = defaults.
	SnapshotThreshold, TrailingLogs uint64
}

// Default snapshot settings: snapshots stay small (the state is a few
// deployments) so a snapshot every 2048 entries is cheap; raft's default
// trailing log lets a follower that missed up to 10240 entries catch up
// from the log.
const (
	defaultSnapshotThreshold = 2048
	defaultTrailingLogs      = 10240
)

// Store is a Raft node and its state machine.
type Store struct {
	raft    *raft.Raft
	fsm     *fsm
	bolt    *raftboltdb.BoltStore
	logFile *os.File
	trans   raft.Transport
	stream  *tlsStream // nil on the in-memory transport
	nodeID  string
	addr    raft.ServerAddress
	logger  hclog.Logger

	closeOnce sync.Once
	closeErr  error

	changed notify.Signal // fires on every applied command
	leader  notify.Signal // fires on every change of leader or of this node's role, and once Serving
	obs     *raft.Observer
	obsDone chan struct{}

	caughtUp atomic.Uint64 // the term in which this node's Barrier last returned
}

// singleTiming is OpenSingle's: one node has nobody to wait for, and no
// peer to lose a lease to, so the shortest timeouts raft accepts: a
// restarted node waits one heartbeat timeout (plus up to as much again)
// before it elects itself, which is most of the CLI's start (100 ms
// timeouts cost 100-200 ms on every `drover deploy`).
var singleTiming = Timing{
	Heartbeat:   10 * time.Millisecond,
	Election:    10 * time.Millisecond,
	LeaderLease: 10 * time.Millisecond,
	Commit:      10 * time.Millisecond,
}

// OpenSingle opens (or creates) a one-node cluster in opts.Dir and waits
// until it leads. It is the embedded coordinator of the CLI. It always
// uses the in-memory transport: opts.RaftAddr must be empty.
func OpenSingle(ctx context.Context, opts Options) (*Store, error) {
	if opts.RaftAddr != "" {
		return nil, errors.New("raftstore: OpenSingle runs in memory; use Open with a RaftAddr")
	}
	if opts.NodeID == "" {
		opts.NodeID = "node1"
	}
	opts.Bootstrap = true
	s, err := open(opts, singleTiming, func(*Store) (raft.Transport, error) {
		_, trans := raft.NewInmemTransport(raft.ServerAddress(opts.NodeID))
		return trans, nil
	})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.waitFor(wctx, func() bool { return s.raft.State() == raft.Leader }); err != nil {
		s.Close()
		return nil, fmt.Errorf("wait for leadership: %w", err)
	}
	// Make sure every committed entry is applied before anyone reads.
	if err := s.raft.Barrier(10 * time.Second).Error(); err != nil {
		s.Close()
		return nil, fmt.Errorf("barrier: %w", err)
	}
	return s, nil
}

// open is the setup shared by Open and OpenSingle: the data dir, raft's
// log, the bolt log and stable store behind a cache, file snapshots, the
// FSM wired to the changed notification, the transport that transport
// makes, bootstrap when asked and the data dir is empty, and raft itself.
func open(opts Options, timing Timing, transport func(*Store) (raft.Transport, error)) (*Store, error) {
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	s := &Store{fsm: newFSM(), nodeID: opts.NodeID}
	s.fsm.onApply = s.changed.Fire

	logw := opts.Log
	if logw == nil {
		f, err := os.OpenFile(filepath.Join(opts.Dir, "raft.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open raft log: %w", err)
		}
		s.logFile, logw = f, f
	}
	s.logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: logw, Level: hclog.Info})
	fail := func(err error) (*Store, error) {
		s.Close()
		return nil, err
	}

	if err := checkBolt(filepath.Join(opts.Dir, "raft.db")); err != nil {
		if errors.Is(err, ErrDataDirInUse) {
			return fail(fmt.Errorf("%s: %w", opts.Dir, ErrDataDirInUse))
		}
		return fail(err)
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
	logs, err := raft.NewLogCache(512, bolt)
	if err != nil {
		return fail(fmt.Errorf("log cache: %w", err))
	}

	trans, err := transport(s)
	if err != nil {
		return fail(err)
	}
	s.trans, s.addr = trans, trans.LocalAddr()

	t := opts.Timing.withDefaults(timing)
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(opts.NodeID)
	cfg.Logger = s.logger
	cfg.HeartbeatTimeout = t.Heartbeat
	cfg.ElectionTimeout = t.Election
	cfg.LeaderLeaseTimeout = t.LeaderLease
	cfg.CommitTimeout = t.Commit
	cfg.SnapshotThreshold = orDefault(opts.SnapshotThreshold, defaultSnapshotThreshold)
	cfg.TrailingLogs = orDefault(opts.TrailingLogs, defaultTrailingLogs)
	if err := raft.ValidateConfig(cfg); err != nil {
		return fail(fmt.Errorf("raft config: %w", err))
	}

	has, err := raft.HasExistingState(logs, bolt, snaps)
	if err != nil {
		return fail(fmt.Errorf("inspect raft state: %w", err))
	}
	switch {
	case !has && opts.Bootstrap:
		conf := raft.Configuration{Servers: []raft.Server{{ID: cfg.LocalID, Address: s.addr}}}
		if err := raft.BootstrapCluster(cfg, logs, bolt, snaps, trans, conf); err != nil {
			return fail(fmt.Errorf("bootstrap: %w", err))
		}
	case has && opts.Bootstrap && s.stream != nil:
		s.logger.Info("data dir already holds raft state: bootstrap ignored", "dir", opts.Dir)
	}
	r, err := raft.NewRaft(cfg, s.fsm, logs, bolt, snaps, trans)
	if err != nil {
		return fail(fmt.Errorf("start raft: %w", err))
	}
	s.raft = r
	s.watchLeader()
	return s, nil
}

// watchLeader turns raft's observations of the leader and of this node's
// role into the leader signal. Both are needed: when a leader steps down,
// raft announces "no leader" *before* it changes its own state, so a
// waiter woken by that announcement can still see IsLeader true; only the
// state change that follows (a RaftState observation) tells it that this
// node no longer leads.
func (s *Store) watchLeader() {
	ch := make(chan raft.Observation, 16)
	s.obs = raft.NewObserver(ch, false, leaderEvent)
	s.obsDone = make(chan struct{})
	s.raft.RegisterObserver(s.obs)
	go func() {
		for {
			select {
			case <-ch:
				s.leader.Fire()
			case <-s.obsDone:
				return
			}
		}
	}()
}

// leaderEvent selects the observations that fire the leader signal.
func leaderEvent(o *raft.Observation) bool {
	switch o.Data.(type) {
	case raft.LeaderObservation, raft.RaftState:
		return true
	}
	return false
}

// LeaderChanged returns a channel closed at the next change of leader,
// this node's own leadership included.
func (s *Store) LeaderChanged() <-chan struct{} { return s.leader.C() }

func orDefault(v, def uint64) uint64 {
	if v == 0 {
		return def
	}
	return v
}

// waitFor returns once cond holds, re-checking it at each leader change
// raft announces, or when ctx ends.
func (s *Store) waitFor(ctx context.Context, cond func() bool) error {
	// The signal fires after raft changes its leader and after it changes
	// this node's state, so checking after taking the channel cannot miss
	// a change.
	for {
		changed := s.leader.C()
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Close shuts the node down and releases the data dir and the address.
// Closing again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.obs != nil {
			s.raft.DeregisterObserver(s.obs)
			close(s.obsDone)
		}
		if s.raft != nil {
			// Shutdown also closes the transport.
			errs = append(errs, s.raft.Shutdown().Error())
		} else if c, ok := s.trans.(raft.WithClose); ok {
			errs = append(errs, c.Close())
		}
		if s.bolt != nil {
			errs = append(errs, s.bolt.Close())
		}
		if s.logFile != nil {
			errs = append(errs, s.logFile.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Apply replicates c and returns once it is applied, with the command's own
// error (ErrHostLocked, ErrTerminal, ...) if it was refused. When ctx
// carries a request key (WithRequestKey) that was applied before, nothing
// changes and the error is an *AppliedError. A leader lost while c was
// being committed gives an error matching ErrOutcomeUnknown (and
// ErrNotLeader): c may still be applied.
func (s *Store) Apply(ctx context.Context, c deploy.Command) error {
	if p, ok := c.(*deploy.Prune); ok && s.nothingToPrune(p) {
		return nil // not worth a log entry (and a sync) on every submit
	}
	b, err := encode(c, requestKey(ctx, c))
	if err != nil {
		return err
	}
	timeout, err := timeoutOf(ctx)
	if err != nil {
		return fmt.Errorf("raft apply: %w", err)
	}
	f := s.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		if lerr := leadershipError("raft apply", err); lerr != nil {
			return lerr
		}
		return fmt.Errorf("raft apply: %w", err)
	}
	if err, ok := f.Response().(error); ok {
		return err
	}
	return nil
}

// nothingToPrune: p would drop nothing from this node's state. A node
// behind the log may miss something to drop; the next Prune drops it.
func (s *Store) nothingToPrune(p *deploy.Prune) bool {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	return s.fsm.state.nothingToPrune(p)
}

// Snapshot forces a snapshot (used by backup and tests).
func (s *Store) Snapshot() error {
	return s.raft.Snapshot().Error()
}

// Changed returns a channel closed at the next applied command.
func (s *Store) Changed() <-chan struct{} { return s.changed.C() }

// Deployment returns a copy of one deployment.
func (s *Store) Deployment(id string) (deploy.Deployment, error) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	d := s.fsm.state.Deployments[id]
	if d == nil {
		return deploy.Deployment{}, fmt.Errorf("%s: %w", id, deploy.ErrUnknownDeployment)
	}
	return d.Clone(), nil
}

// Deployments returns copies of all deployments, oldest first.
func (s *Store) Deployments() []deploy.Deployment {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	out := make([]deploy.Deployment, 0, len(s.fsm.state.Order))
	for _, id := range s.fsm.state.Order {
		out = append(out, s.fsm.state.Deployments[id].Clone())
	}
	return out
}

// HostRecord returns what is known about a host (zero record if nothing).
func (s *Store) HostRecord(name string) deploy.HostRecord {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	if r := s.fsm.state.Hosts[name]; r != nil {
		return *r
	}
	return deploy.HostRecord{Name: name}
}
