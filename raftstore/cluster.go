package raftstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// ErrUnknownMember is returned by RemoveServer for an id that is not in
// the cluster's configuration.
var ErrUnknownMember = errors.New("no such cluster member")

// Timing tunes Raft's failure detection. Raft's leader sends heartbeats
// every Heartbeat/10.
type Timing struct {
	// Heartbeat is how long a follower goes without hearing from the
	// leader before it calls an election (randomised in [1x, 2x]).
	Heartbeat time.Duration
	// Election is how long a candidate waits for votes before it tries
	// again (randomised in [1x, 2x]).
	Election time.Duration
	// LeaderLease is how long a leader keeps leading without hearing from
	// a quorum; it must not exceed Heartbeat.
	LeaderLease time.Duration
	// Commit is how long the leader waits, with nothing to send, before
	// it tells followers the latest commit index (their apply latency).
	Commit time.Duration
}

// lanTiming is the default for Open: failover well under a second on a LAN
// without flapping.
//
//   - Heartbeat 300ms: heartbeats go out every 30ms, so a follower calls an
//     election only after about ten missed heartbeats in a row: a dropped
//     packet, a GC pause or a slow fsync does not depose a healthy leader,
//     while a dead one is noticed within 300-600ms (LAN round trips are
//     well under 1ms; raft's defaults of 1s are sized for WANs).
//   - Election 300ms: a vote on a LAN takes milliseconds, so a split vote
//     is retried quickly; the randomisation separates the candidates.
//   - LeaderLease 200ms: shorter than the heartbeat timeout, so a leader cut
//     off from its quorum steps down (and the engine stops its side effects)
//     before any follower can start an election: two nodes never both
//     believe they lead for long.
//   - Commit 20ms: followers learn the commit index within ~20-40ms when
//     the leader is idle (cheap on a LAN: one small RPC per follower).
var lanTiming = Timing{
	Heartbeat:   300 * time.Millisecond,
	Election:    300 * time.Millisecond,
	LeaderLease: 200 * time.Millisecond,
	Commit:      20 * time.Millisecond,
}

// withDefaults fills t's zero fields from def, keeping the result valid
// for raft: a defaulted lease never exceeds the heartbeat, and a defaulted
// election timeout is never below it.
func (t Timing) withDefaults(def Timing) Timing {
	out := t
	if out.Heartbeat == 0 {
		out.Heartbeat = def.Heartbeat
	}
	if out.Election == 0 {
		out.Election = max(def.Election, out.Heartbeat)
	}
	if out.LeaderLease == 0 {
		out.LeaderLease = min(def.LeaderLease, out.Heartbeat)
	}
	if out.Commit == 0 {
		out.Commit = def.Commit
	}
	return out
}

// Open opens (or creates) a cluster node in opts.Dir that talks to its
// peers over mutual TLS on opts.RaftAddr. It does not wait for a leader
// (see WaitLeader): a new node without Bootstrap waits to be added by the
// leader (AddVoter), a restarted node rejoins the cluster in its log.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open raft node: %w", err)
	}
	switch {
	case opts.NodeID == "":
		return nil, errors.New("open raft node: NodeID is required")
	case opts.RaftAddr == "":
		return nil, errors.New("open raft node: RaftAddr is required (OpenSingle runs in memory)")
	case opts.ServerTLS == nil || opts.ClientTLS == nil:
		return nil, errors.New("open raft node: ServerTLS and ClientTLS are required")
	}
	return open(opts, lanTiming, func(s *Store) (raft.Transport, error) {
		adv := opts.Advertise
		if adv == "" {
			adv = opts.RaftAddr
		}
		stream, err := listenTLS(opts.RaftAddr, adv, opts.ServerTLS, opts.ClientTLS, transportTimeout, s.logger)
		if err != nil {
			return nil, err
		}
		s.stream = stream
		return newNetworkTransport(stream, s.logger), nil
	})
}

// timeoutOf turns ctx's deadline into a raft timeout (10s without one).
func timeoutOf(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			return 0, context.DeadlineExceeded
		}
		return d, nil
	}
	return 10 * time.Second, nil
}

// await waits for f, or for ctx. Raft futures cannot be cancelled: the
// ones used here end by themselves (timeout, step-down or shutdown).
func await(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// raftError converts raft's leadership errors (see leadershipError),
// keeping the original in the chain.
func raftError(what string, err error) error {
	if lerr := leadershipError(what, err); lerr != nil {
		return lerr
	}
	return fmt.Errorf("%s: %w", what, err)
}

// WaitLeader returns once this node knows a leader (itself or another).
func (s *Store) WaitLeader(ctx context.Context) error {
	if err := s.waitFor(ctx, func() bool { id, _ := s.Leader(); return id != "" }); err != nil {
		return fmt.Errorf("wait for a leader: %w", err)
	}
	return nil
}

// NodeID returns this node's id.
func (s *Store) NodeID() string { return s.nodeID }

// Addr returns the address peers dial to reach this node (for the
// in-memory transport, its in-memory address).
func (s *Store) Addr() string { return string(s.addr) }

// IsLeader reports whether this node believes it leads. Use VerifyLeader
// before acting on it.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the id and raft address of the leader as this node knows
// it, "" when unknown.
func (s *Store) Leader() (id, raftAddr string) {
	addr, sid := s.raft.LeaderWithID()
	return string(sid), string(addr)
}

// LeaderCh delivers true when this node gains leadership and false when it
// loses it. It has a single consumer (the engine supervisor). The channel
// holds one value and raft replaces an unread value with the newer one, so
// a slow reader never blocks raft and always receives the latest state: a
// reader may see true twice in a row (lost and regained meanwhile) and
// must treat every value as "this is the state now".
func (s *Store) LeaderCh() <-chan bool { return s.raft.LeaderCh() }

// VerifyLeader checks with a quorum that this node still leads and returns
// the term it leads in. The error wraps ErrNotLeader when it does not (or
// lost leadership, or the term moved on, while checking).
func (s *Store) VerifyLeader(ctx context.Context) (uint64, error) {
	term := s.raft.CurrentTerm()
	if err := await(ctx, s.raft.VerifyLeader()); err != nil {
		return 0, raftError("verify leadership", err)
	}
	if now := s.raft.CurrentTerm(); now != term {
		return 0, fmt.Errorf("verify leadership: term moved from %d to %d: %w", term, now, ErrNotLeader)
	}
	return term, nil
}

// Term returns the current Raft term.
func (s *Store) Term() uint64 { return s.raft.CurrentTerm() }

// Barrier returns once every entry committed before it is applied to the
// local state. A new leader calls it before it reads the state. Leader only.
//
// A leader's first Barrier of its term makes it Serving, and fires the
// leader signal.
func (s *Store) Barrier(ctx context.Context) error {
	timeout, err := timeoutOf(ctx)
	if err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	term := s.raft.CurrentTerm()
	if err := await(ctx, s.raft.Barrier(timeout)); err != nil {
		return raftError("barrier", err)
	}
	if s.caughtUp.Swap(term) != term {
		s.leader.Fire()
	}
	return nil
}

// Serving reports whether this node leads and has applied everything
// committed before its term (a Barrier in this term returned). A new
// leader's state may lag the cluster's until then (a node restarted a
// moment ago has only its snapshot applied): it must not answer reads, or
// refuse tokens, for the cluster before.
func (s *Store) Serving() bool {
	return s.IsLeader() && s.caughtUp.Load() == s.raft.CurrentTerm()
}

// Member is one server of the cluster's configuration.
type Member struct {
	ID, Address string
	Voter       bool
	Leader      bool
}

// Members returns the servers of the latest configuration (possibly not
// yet committed), in configuration order.
func (s *Store) Members() ([]Member, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read cluster configuration: %w", err)
	}
	leader, _ := s.Leader()
	servers := f.Configuration().Servers
	out := make([]Member, 0, len(servers))
	for _, srv := range servers {
		out = append(out, Member{
			ID:      string(srv.ID),
			Address: string(srv.Address),
			Voter:   srv.Suffrage == raft.Voter,
			Leader:  leader != "" && string(srv.ID) == leader,
		})
	}
	return out, nil
}

// NodeStats is a snapshot of this node's Raft progress.
type NodeStats struct {
	State                           string // Follower, Candidate, Leader or Shutdown
	Term, AppliedIndex, CommitIndex uint64
	LastLogIndex                    uint64
	LastContact                     time.Duration // since the leader was last heard from: 0 on the leader, -1 never
	LastSnapshotIndex               uint64        // last snapshot taken or installed
}

// Stats returns this node's Raft progress.
func (s *Store) Stats() NodeStats {
	m := s.raft.Stats()
	u := func(k string) uint64 {
		v, _ := strconv.ParseUint(m[k], 10, 64)
		return v
	}
	st := NodeStats{
		State:             m["state"],
		Term:              u("term"),
		AppliedIndex:      u("applied_index"),
		CommitIndex:       u("commit_index"),
		LastLogIndex:      u("last_log_index"),
		LastSnapshotIndex: u("last_snapshot_index"),
		LastContact:       -1,
	}
	if st.State == raft.Leader.String() {
		st.LastContact = 0
	} else if last := s.raft.LastContact(); !last.IsZero() {
		st.LastContact = time.Since(last)
	}
	return st
}

// AddVoter makes id at addr a voting member. Leader only. A member with the
// same id and another address is moved to addr; a member with another id
// at addr is removed first (a node that came back with a new identity);
// the same id at the same address is a no-op.
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	what := fmt.Sprintf("add voter %s at %s", id, addr)
	if id == "" || addr == "" {
		return fmt.Errorf("%s: id and address are required", what)
	}
	conf, index, timeout, err := s.leaderConfig(ctx, what)
	if err != nil {
		return err
	}
	for _, srv := range conf.Servers {
		switch {
		case string(srv.ID) == id && string(srv.Address) == addr && srv.Suffrage == raft.Voter:
			return nil
		case string(srv.ID) != id && string(srv.Address) == addr:
			if srv.ID == raft.ServerID(s.nodeID) {
				return fmt.Errorf("%s: the address is the leader's own (%s)", what, s.nodeID)
			}
			s.logger.Info("removing member whose address a joining node now uses", "old-id", srv.ID, "new-id", id, "address", addr)
			rf := s.raft.RemoveServer(srv.ID, index, timeout)
			if err := await(ctx, rf); err != nil {
				return raftError(fmt.Sprintf("%s: remove %s", what, srv.ID), err)
			}
			index = rf.Index()
		}
	}
	// An existing voter with this id has its address replaced in place.
	if err := await(ctx, s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), index, timeout)); err != nil {
		return raftError(what, err)
	}
	return nil
}

// leaderConfig is what a membership change starts from, on the leader:
// raft's configuration, its index (changes are made against it) and the
// time ctx leaves.
func (s *Store) leaderConfig(ctx context.Context, what string) (raft.Configuration, uint64, time.Duration, error) {
	if !s.IsLeader() {
		return raft.Configuration{}, 0, 0, fmt.Errorf("%s: %w", what, ErrNotLeader)
	}
	timeout, err := timeoutOf(ctx)
	if err != nil {
		return raft.Configuration{}, 0, 0, fmt.Errorf("%s: %w", what, err)
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, 0, 0, fmt.Errorf("%s: read configuration: %w", what, err)
	}
	return f.Configuration(), f.Index(), timeout, nil
}

// RemoveServer removes id from the cluster. Leader only; ErrUnknownMember
// when id is not a member.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	what := "remove server " + id
	conf, index, timeout, err := s.leaderConfig(ctx, what)
	if err != nil {
		return err
	}
	found := false
	for _, srv := range conf.Servers {
		found = found || string(srv.ID) == id
	}
	if !found {
		return fmt.Errorf("%s: %w", what, ErrUnknownMember)
	}
	if err := await(ctx, s.raft.RemoveServer(raft.ServerID(id), index, timeout)); err != nil {
		return raftError(what, err)
	}
	return nil
}
