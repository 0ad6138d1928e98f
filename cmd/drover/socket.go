package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/raftstore"
)

// While a local deploy (or resume, rollback, repair) runs, the process
// holds the data dir's store; it serves the cluster's API on a unix socket
// in the data dir, so that other drover commands on that data dir (status,
// status --watch, history, pause, abort...) talk to it instead of failing
// with "data dir is in use". The socket is the owner's only (mode 0600,
// bound in a 0700 directory before it is moved into place; connecting
// needs write permission on it): its file permissions are the
// authentication (api.Config.Local). A deploy asked of
// it is refused, naming the deployment that runs: host locks hold across
// every process that shares the data dir.

// socketName is the embedded coordinator's socket in the data dir.
const socketName = "drover.sock"

// dialEmbedded connects to the embedded coordinator serving dataDir, or
// returns nil when none does (no socket, or a stale one left by a killed
// process: nothing accepts on it).
func dialEmbedded(dataDir string) *api.Client {
	sock := filepath.Join(dataDir, socketName)
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return nil
	}
	c.Close()
	cl, err := api.NewClient(api.ClientConfig{Socket: sock})
	if err != nil {
		return nil
	}
	return cl
}

// serve serves the API of this embedded coordinator, which drives
// deployment id, on the data dir's socket until the returned stop. A
// socket it cannot create is a warning: the deploy goes on without it.
func (c *local) serve(dir, id string) (stop func()) {
	sock := filepath.Join(dir, socketName)
	ln, err := listenPrivate(dir, sock)
	if err != nil {
		fmt.Fprintf(os.Stderr, "drover: warning: other drover commands cannot reach this deploy (%v); they will find the data dir in use\n", err)
		return func() {}
	}
	e := &embedded{c: c, driving: id, changed: make(chan struct{})}
	srv := &http.Server{
		Handler: api.NewServer(api.Config{Node: e, Cluster: e, Deployments: e, Artifacts: e, Auth: e, NodeID: "embedded",
			Local: true, Log: slog.New(slog.DiscardHandler)}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return func() {
		// Event streams of a deployment that ended send their end and
		// return; those still open (a paused deployment) are cut.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
		os.Remove(sock)
	}
}

// listenPrivate listens on a unix socket at sock that only this user can
// open: bound in a fresh 0700 directory, made 0600, then moved into place
// (replacing a stale socket: this process holds the store, so no other
// serves it).
func listenPrivate(dir, sock string) (net.Listener, error) {
	tmp, err := os.MkdirTemp(dir, ".sock-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	ln, err := net.Listen("unix", filepath.Join(tmp, socketName))
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(filepath.Join(tmp, socketName), 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Rename(filepath.Join(tmp, socketName), sock); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	return ln, nil
}

// embedded is the API's view of the embedded coordinator: one node that
// leads, the store of the data dir, and the engine of this process, which
// drives one deployment.
type embedded struct {
	c       *local
	driving string        // the deployment this process runs
	changed chan struct{} // never closed: an embedded coordinator's leader never changes
}

// errNotHere refuses what only a cluster does.
func errNotHere(what string) error {
	return fmt.Errorf("%w: %s needs a coordinator cluster (--server), not a local drover", api.ErrBadRequest, what)
}

// Status says what this node is.
func (e *embedded) Status() api.NodeStatus {
	_, seq := e.c.store.Events("", ^uint64(0))
	return api.NodeStatus{ID: "embedded", State: "Leader", Leader: "embedded", AppliedIndex: seq, CommitIndex: seq,
		Version: build().Version}
}

// IsLeader: the one node leads.
func (e *embedded) IsLeader() bool { return true }

// LeaderHTTP: no other node to forward to.
func (e *embedded) LeaderHTTP() string { return "" }

// LeaderChanged never fires.
func (e *embedded) LeaderChanged() <-chan struct{} { return e.changed }

// Members is this node.
func (e *embedded) Members(context.Context) ([]api.Member, error) {
	return []api.Member{{ID: "embedded", Voter: true, Leader: true, Reachable: true, State: "Leader"}}, nil
}

// Join is for a cluster.
func (e *embedded) Join(context.Context, api.JoinRequest) error { return errNotHere("joining") }

// Remove is for a cluster.
func (e *embedded) Remove(context.Context, string) error { return errNotHere("removing a member") }

// Backup is for a cluster.
func (e *embedded) Backup(io.Writer) error { return errNotHere("a backup") }

// Restore is for a cluster.
func (e *embedded) Restore(context.Context, io.Reader) error { return errNotHere("a restore") }

// busy says which deployment holds this data dir, for a refusal.
func (e *embedded) busy() string {
	return fmt.Sprintf("%s runs in another drover process (pid %d) on this data dir", e.driving, os.Getpid())
}

// Submit refuses: this process runs one deployment, and nothing would run
// another. The hosts the plan shares with running deployments are named.
func (e *embedded) Submit(_ context.Context, req api.SubmitRequest) (string, error) {
	opts := plans.Options{Env: func(k string) (string, bool) {
		v, ok := req.Vars[k]
		return v, ok
	}, Set: req.Set}
	if p, err := plans.ParseWith(req.PlanName, []byte(req.Plan), opts, plans.Files{SkipCoordinatorFiles: true, Artifact: plans.ArtifactUnchecked}); err == nil {
		var held []string
		for _, h := range p.Hosts {
			if lock := e.c.store.HostRecord(h.Name).Lock; lock != "" {
				held = append(held, h.Name+" ("+lock+")")
			}
		}
		if len(held) > 0 {
			return "", fmt.Errorf("%w: %s; %s", deploy.ErrHostLocked, strings.Join(held, ", "), e.busy())
		}
	}
	return "", fmt.Errorf("%w: %s; one deployment at a time per data dir: wait for it, or use another --data-dir", api.ErrConflict, e.busy())
}

// List is every deployment of the data dir.
func (e *embedded) List() []deploy.Deployment { return e.c.store.Deployments() }

// Get is one deployment.
func (e *embedded) Get(id string) (deploy.Deployment, error) { return e.c.store.Deployment(id) }

// Act records an operator's action (deploy.Decide): the deployment this
// process runs is supervised by its engine; any other in the data dir is
// run by nothing.
func (e *embedded) Act(ctx context.Context, id string, a api.Action) error {
	d, err := e.c.store.Deployment(id)
	if err != nil {
		return err
	}
	by := deploy.Unattended
	if id == e.driving {
		by = deploy.Supervised
	}
	cmd, err := deploy.Decide(&d, a, by, time.Now().UTC())
	if errors.Is(err, deploy.ErrNotRunning) {
		return fmt.Errorf("%w: %w", api.ErrConflict, err)
	}
	if err != nil {
		return err
	}
	return e.c.store.Apply(ctx, cmd)
}

// Rollback waits for the running deployment.
func (e *embedded) Rollback(context.Context, string, string) (string, error) {
	return "", fmt.Errorf("%w: %s; roll back after it ends", api.ErrConflict, e.busy())
}

// Repair waits for the running deployment.
func (e *embedded) Repair(context.Context, api.RepairRequest) (api.RepairResponse, error) {
	return api.RepairResponse{}, fmt.Errorf("%w: %s; repair after it ends", api.ErrConflict, e.busy())
}

// Events are the data dir's recorded events.
func (e *embedded) Events(id string, after uint64) ([]deploy.Event, uint64) {
	return e.c.store.Events(id, after)
}

// Logs are the data dir's recorded command output.
func (e *embedded) Logs(q deploy.LogQuery) (deploy.LogPage, error) { return e.c.store.Logs(q) }

// Changed fires at the next recorded change.
func (e *embedded) Changed() <-chan struct{} { return e.c.store.Changed() }

// Has: the embedded coordinator reads artifacts from the plan's paths.
func (e *embedded) Has(string) bool { return false }

// Put refuses: nothing would run a deployment of it.
func (e *embedded) Put(context.Context, string, io.Reader) error {
	return fmt.Errorf("%w: %s", api.ErrConflict, e.busy())
}

// Open: no artifact store here.
func (e *embedded) Open(string) (io.ReadCloser, int64, error) {
	return nil, 0, fmt.Errorf("%w: an embedded coordinator keeps no artifacts", api.ErrNotFound)
}

// Authenticate: no tokens; the socket's permissions admit its owner.
func (e *embedded) Authenticate(string) (raftstore.TokenRole, bool) { return "", false }

// CreateToken is for a cluster.
func (e *embedded) CreateToken(context.Context, api.TokenRequest) (string, error) {
	return "", errNotHere("an API token")
}

// Tokens: none.
func (e *embedded) Tokens() []raftstore.Token { return nil }

// DeleteToken is for a cluster.
func (e *embedded) DeleteToken(context.Context, string) error { return errNotHere("an API token") }
