// Package coordinator is one node of a drover cluster (`drover server`): the
// replicated store on Raft over mutual TLS, the HTTPS API, the artifact
// store, and the engine, which runs only while this node leads.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/connlimit"
	"github.com/drover-dev/drover/internal/ctxtime"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/orchestrator"
	"github.com/drover-dev/drover/raftstore"
	hub "github.com/drover-dev/drover/transport/agent"
	"github.com/drover-dev/drover/transport/agent/wire"
	"github.com/drover-dev/drover/ui"
	"github.com/drover-dev/drover/webhook"
)

// Config describes one coordinator.
type Config struct {
	NodeID   string
	DataDir  string
	RaftAddr string // listen and advertise address for Raft, "ip:port"
	HTTPAddr string // listen and advertise address for the API, "ip:port"
	TLS      pki.Paths
	// Bootstrap forms a new cluster with this node alone when its data
	// dir is empty; Join lists API addresses of existing members to ask.
	Bootstrap bool
	Join      []string
	// BootstrapToken, when set, is stored (hashed) as the management token
	// if the cluster has none yet.
	BootstrapToken string
	Timing         raftstore.Timing
	Log            *slog.Logger
	// Version is reported in /v1/status.
	Version string
	// CADir, when it holds the CA key (ca.key), lets this node sign the
	// certificates of enrolling agents.
	CADir string
	// PlanFiles are the files, and directories of files, on this node that
	// submitted plans may name (inventory, SSH key and known_hosts, HAProxy
	// socket); nothing else is read, probed or written for a plan.
	PlanFiles []string
	// KeepDeployments is how many finished deployments the cluster keeps
	// (0: deploy.DefaultKeepFinished).
	KeepDeployments int
	// Limits bound what one client can hold open; zero fields take the
	// defaults (DefaultLimits).
	Limits Limits
	// NoDashboard leaves the web dashboard (/ui/, package ui) out.
	NoDashboard bool
}

// Limits bound the API's connections. The event stream, artifact
// transfers, backups and restores lift the read and write deadlines once
// the caller is authorised (api.NewServer), and agent connections once
// upgraded to WebSocket; everything else must arrive within them.
type Limits struct {
	// ReadHeaderTimeout: from accepting a connection (or the end of the
	// previous request) to the end of the request headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout: to the end of a request's body.
	ReadTimeout time.Duration
	// IdleTimeout: how long a keep-alive connection may wait for its next
	// request.
	IdleTimeout time.Duration
	// ConnsPerSource caps the connections one source IP holds open at
	// once; -1 means no cap.
	ConnsPerSource int
}

// DefaultLimits are generous for operators, agents and peers on slow
// links, and short enough that idle or trickling clients cannot pile up.
// 512 connections per address leaves room for hundreds of agents behind
// one NAT (one connection each) and for a follower forwarding watchers.
var DefaultLimits = Limits{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, ConnsPerSource: 512}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.ReadHeaderTimeout > 0 {
		d.ReadHeaderTimeout = l.ReadHeaderTimeout
	}
	if l.ReadTimeout > 0 {
		d.ReadTimeout = l.ReadTimeout
	}
	if l.IdleTimeout > 0 {
		d.IdleTimeout = l.IdleTimeout
	}
	if l.ConnsPerSource != 0 {
		d.ConnsPerSource = l.ConnsPerSource
	}
	return d
}

// Coordinator is a running node.
type Coordinator struct {
	cfg     Config
	hub     *hub.Hub
	ca      *pki.CA // nil: agent enrollment is refused here
	caPEM   []byte
	store   *raftstore.Store
	engine  *orchestrator.Engine
	hooks   *webhook.Notifier // runs while this node leads
	arts    *artifacts
	metrics *metrics
	log     *slog.Logger
	peer    *http.Client // mutual TLS with this node's server certificate
	httpSrv *http.Server
	ln      net.Listener
}

// Start opens the store, starts the API and the leadership loop, and asks
// to join when told to. Run blocks until ctx ends; Close stops everything.
func Start(ctx context.Context, cfg Config) (*Coordinator, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if err := checkAdvertised("raft-addr", cfg.RaftAddr); err != nil {
		return nil, err
	}
	if err := checkAdvertised("http-addr", cfg.HTTPAddr); err != nil {
		return nil, err
	}
	serverTLS, clientTLS, err := pki.PeerConfigs(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("raft TLS: %w", err)
	}
	apiTLS, err := pki.APIServerConfig(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("API TLS: %w", err)
	}
	c := &Coordinator{cfg: cfg, log: cfg.Log, metrics: newMetrics()}
	// Short timeouts between coordinators: a peer that is cut off must
	// not hold a forwarded request for the minutes TCP takes to give up;
	// the client then tries another node, which knows the new leader.
	c.peer = &http.Client{Transport: &http.Transport{
		TLSClientConfig:       clientTLS.Clone(),
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   3 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
	}}
	// Listen before Raft starts, so that a port taken is a clear error
	// before anything is written.
	if c.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen for the API on %s: %w", cfg.HTTPAddr, err)
	}
	logw, err := os.OpenFile(filepath.Join(mkdir(cfg.DataDir), "raft.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.ln.Close()
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	c.store, err = raftstore.Open(ctx, raftstore.Options{
		Dir: cfg.DataDir, NodeID: cfg.NodeID, Log: logw,
		RaftAddr: cfg.RaftAddr, ServerTLS: serverTLS, ClientTLS: clientTLS,
		Bootstrap: cfg.Bootstrap, Timing: cfg.Timing,
	})
	if err != nil {
		c.ln.Close()
		logw.Close()
		return nil, err
	}
	c.arts = &artifacts{dir: filepath.Join(cfg.DataDir, "artifacts"), peers: c.peerAddrs, http: c.peer}
	if c.caPEM, err = os.ReadFile(cfg.TLS.CA); err != nil {
		c.Close()
		return nil, fmt.Errorf("read the CA certificate: %w", err)
	}
	if cfg.CADir != "" {
		if c.ca, err = pki.LoadCA(cfg.CADir); err != nil {
			if !errors.Is(err, pki.ErrNoCA) {
				c.Close()
				return nil, err
			}
			c.log.Info("agent enrollment disabled on this node: no CA key", "dir", cfg.CADir)
		}
	}
	c.hub = hub.New(hub.Config{Registry: agentRegistry{c}, Leader: c, Log: cfg.Log})
	deps := orchestrator.DefaultDeps(timedStore{c.store, c.metrics}, c.onEvent)
	deps.KeepFinished = cfg.KeepDeployments
	deps.Connector = c.connector
	deps.Health = c.health
	deps.Fence = c.store.VerifyLeader
	deps.ArtifactPath = c.arts.Path
	c.engine = orchestrator.New(deps)
	c.hooks = webhook.New(webhook.Config{Source: c.store, Env: os.LookupEnv, Log: cfg.Log})

	handler := api.NewServer(api.Config{
		NodeID: cfg.NodeID, Node: c, Cluster: c, Deployments: c, Artifacts: c.arts, Auth: c, Agents: c,
		Certs: certificates{c}, Forward: c.peer, Metrics: c.metrics.handler(), Log: cfg.Log,
	})
	// The agents' endpoints authenticate on their own (a join token, an
	// agent certificate), outside the token-checked API.
	mux := http.NewServeMux()
	mux.Handle(wire.ConnectPath, c.hub.Handler())
	mux.Handle(wire.EnrollPath, c.hub.Handler())
	if !cfg.NoDashboard {
		mux.Handle(ui.Prefix, c.dashboard())
		mux.Handle("GET /{$}", ui.Redirect())
	}
	mux.Handle("/", handler)
	lim := cfg.Limits.withDefaults()
	c.httpSrv = &http.Server{
		Handler:           mux,
		TLSConfig:         apiTLS,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		IdleTimeout:       lim.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	ln := connlimit.New(c.ln, lim.ConnsPerSource, func(remote net.Addr) {
		c.metrics.connsRefused.Inc()
		c.log.Debug("API connection refused: too many from this address", "remote", remote, "max", lim.ConnsPerSource)
	})
	go func() {
		if err := c.httpSrv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("API server stopped", "err", err)
		}
	}()
	c.log.Info("coordinator started", "node", cfg.NodeID, "raft", cfg.RaftAddr, "api", cfg.HTTPAddr, "data_dir", cfg.DataDir)
	return c, nil
}

func mkdir(dir string) string {
	_ = os.MkdirAll(dir, 0o700)
	return dir
}

func checkAdvertised(flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return fmt.Errorf("--%s %q: want ip:port", flag, addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("--%s %q: peers dial this address, so it must be a real one, not %s", flag, addr, host)
	}
	return nil
}

// Run serves until ctx ends: it follows leadership (running the engine
// only while this node leads) and, when told to, asks to join.
func (c *Coordinator) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.pruneLoop(ctx) }()
	if len(c.cfg.Join) > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); c.joinLoop(ctx) }()
	}
	c.leadLoop(ctx)
	wg.Wait()
	return nil
}

// leadLoop starts the engine when this node gains leadership and stops it
// the moment it loses it.
func (c *Coordinator) leadLoop(ctx context.Context) {
	var (
		stop func()
		done chan struct{}
	)
	halt := func() {
		if stop != nil {
			stop()
			<-done
			stop = nil
			// Agents follow the leader: send them to the new one.
			c.hub.CloseAll()
		}
	}
	defer halt()
	lead := c.store.IsLeader()
	ch := c.store.LeaderCh()
	for {
		if lead && stop == nil {
			lctx, cancel := context.WithCancel(ctx)
			stop, done = cancel, make(chan struct{})
			go func() { defer close(done); c.lead(lctx) }()
		} else if !lead {
			halt()
		}
		select {
		case <-ctx.Done():
			return
		case l := <-ch:
			if l != lead {
				c.metrics.leaderChanges.Inc()
			}
			lead = l
			if l {
				c.metrics.isLeader.Set(1)
			} else {
				c.metrics.isLeader.Set(0)
			}
			c.log.Info("leadership changed", "leader", l, "term", c.store.Term())
		}
	}
}

// lead is this node's term as leader: catch up, make sure the cluster
// knows its addresses and the bootstrap token, then run every deployment.
func (c *Coordinator) lead(ctx context.Context) {
	// Catch up with everything committed before acting on it; a barrier
	// that fails (a slow disk, a brief loss of quorum) is retried for as
	// long as this node leads.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := c.store.Barrier(ctx)
		if err == nil {
			break
		}
		c.log.Warn("leader barrier failed, retrying", "err", err, "in", wait)
		if ctxtime.Sleep(ctx, wait) != nil {
			return
		}
	}
	self := raftstore.Node{ID: c.cfg.NodeID, RaftAddr: c.cfg.RaftAddr, HTTPAddr: c.cfg.HTTPAddr}
	if n, ok := c.store.Nodes()[self.ID]; !ok || n != self {
		if err := c.store.Apply(ctx, &raftstore.RegisterNode{Node: self}); err != nil {
			c.log.Warn("register this node", "err", err)
		}
	}
	if c.cfg.BootstrapToken != "" && !c.hasManageToken() {
		err := c.store.Apply(ctx, &raftstore.PutToken{IfNone: true, Token: raftstore.Token{
			Name: "bootstrap", Role: raftstore.RoleManage, Hash: pki.HashToken(c.cfg.BootstrapToken), Created: time.Now().UTC(),
		}})
		if err != nil && !errors.Is(err, deploy.ErrExists) {
			c.log.Warn("store the bootstrap token", "err", err)
		}
	}
	c.log.Info("leading: resuming running deployments", "term", c.store.Term())
	// Webhooks go out from the leader only. The previous leader may have
	// died with deliveries queued: the last minute's events go again, with
	// the IDs they had (receivers drop repeats).
	var hooks sync.WaitGroup
	defer hooks.Wait()
	hooks.Go(func() { c.hooks.Run(ctx, webhook.Since(c.store, time.Now().Add(-webhook.Replay))) })
	c.engine.Supervise(ctx, c.store)
}

// hasManageToken says whether the bootstrap token's job is done: checked
// before applying it, so that a new leader does not spend a Raft round
// trip on every election before resuming deployments.
func (c *Coordinator) hasManageToken() bool {
	for _, t := range c.store.Tokens() {
		if t.Role == raftstore.RoleManage {
			return true
		}
	}
	return false
}

// joinLoop asks the listed members to add this node until one accepts.
// Joining is idempotent, so a restarted node may ask again.
func (c *Coordinator) joinLoop(ctx context.Context) {
	req := api.JoinRequest{ID: c.cfg.NodeID, RaftAddr: c.cfg.RaftAddr, HTTPAddr: c.cfg.HTTPAddr}
	cl, err := api.NewClient(api.ClientConfig{Addrs: c.cfg.Join, TLS: c.peer.Transport.(*http.Transport).TLSClientConfig, Timeout: 10 * time.Second})
	if err != nil {
		c.log.Error("join", "err", err)
		return
	}
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		if c.isMember() {
			// A restarted node is already in the configuration in its
			// log; the cluster it knows has a leader.
			c.log.Info("already a member of the cluster", "leader", c.LeaderHTTP())
			return
		}
		err := cl.Join(ctx, req)
		if err == nil {
			c.log.Info("joined the cluster", "via", c.cfg.Join)
			return
		}
		c.log.Warn("join failed, retrying", "err", err, "in", wait)
		if ctxtime.Sleep(ctx, wait) != nil {
			return
		}
	}
}

// pruneLoop deletes archives no deployment needs any more, on every node,
// every ten minutes.
func (c *Coordinator) pruneLoop(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		if n, err := c.arts.prune(c.store.Deployments(), time.Hour); err != nil {
			c.log.Warn("prune artifacts", "err", err)
		} else if n > 0 {
			c.log.Info("pruned old artifacts", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// isMember reports whether raft's configuration holds this node at its
// address and a leader is known.
func (c *Coordinator) isMember() bool {
	if id, _ := c.store.Leader(); id == "" {
		return false
	}
	ms, err := c.store.Members()
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.ID == c.cfg.NodeID && m.Address == c.cfg.RaftAddr {
			return true
		}
	}
	return false
}

// Close stops the API and the Raft node.
func (c *Coordinator) Close() error {
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var errs []error
	if c.httpSrv != nil {
		errs = append(errs, c.httpSrv.Shutdown(sctx))
	} else if c.ln != nil {
		errs = append(errs, c.ln.Close())
	}
	if c.hub != nil {
		c.hub.CloseAll()
	}
	errs = append(errs, c.store.Close())
	return errors.Join(errs...)
}

// peerAddrs lists the other registered coordinators' API addresses.
func (c *Coordinator) peerAddrs() []string {
	var out []string
	members, _ := c.store.Members()
	in := map[string]bool{}
	for _, m := range members {
		in[m.ID] = true
	}
	for id, n := range c.store.Nodes() {
		if id != c.cfg.NodeID && in[id] && n.HTTPAddr != "" {
			out = append(out, n.HTTPAddr)
		}
	}
	return out
}

// onEvent logs engine progress and feeds the metrics.
func (c *Coordinator) onEvent(ev orchestrator.Event) {
	c.metrics.observe(ev)
	attrs := []any{"deployment", ev.Deployment}
	if ev.Host != "" {
		attrs = append(attrs, "host", ev.Host)
	}
	if ev.Stage != "" {
		attrs = append(attrs, "stage", ev.Stage)
	}
	if ev.Error != "" {
		attrs = append(attrs, "err", ev.Error)
	}
	if ev.Message != "" {
		attrs = append(attrs, "msg", ev.Message)
	}
	lvl := slog.LevelDebug
	switch ev.Kind {
	case orchestrator.EventStarted, orchestrator.EventBatch, orchestrator.EventFinished, orchestrator.EventPaused, orchestrator.EventRollback:
		lvl = slog.LevelInfo
	case orchestrator.EventHostFailed, orchestrator.EventWarning:
		lvl = slog.LevelWarn
	}
	c.log.Log(context.Background(), lvl, string(ev.Kind), attrs...)
}
