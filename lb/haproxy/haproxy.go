// Package haproxy drives HAProxy through its runtime API (the "stats
// socket"), over a unix socket or TCP, to take servers out of rotation and
// put them back during a rolling deployment.
//
// Every command uses its own connection: in its default non-interactive
// mode HAProxy answers one command and closes. The socket must be declared
// with `level admin`; Check verifies that before a deployment starts.
//
// The driver is built for fleets far larger than HAProxy's stats socket:
// that socket accepts `stats maxconn` connections at once (10 by default)
// and refuses more with EAGAIN. So a Driver holds at most Config.MaxConns
// connections at once (default 3) however many hosts call it; one shared
// poller reads `show stat` for every Drain, Enable and Check that waits on
// the same HAProxy (one read serves them all); and a connection that fails
// (EAGAIN, refused, dropped) is retried with backoff, never reported as the
// host's failure unless HAProxy stays unreachable for Config.RetryTimeout
// or the wait's own timeout. Group drives several HAProxy instances that
// front the same servers.
//
// Semantics chosen here (the engine relies on them):
//
//   - Drain sets the server to DRAIN (no new requests; sessions in flight
//     finish), polls `show stat` until the server has no current session and
//     no queued request, then sets MAINT. The drain timeout runs from the
//     first poll.
//   - When the drain timeout passes without Config.Force, Drain returns an
//     error wrapping ErrDrainTimeout and leaves the server in DRAIN: it takes
//     no new traffic and its remaining sessions still finish. That is the
//     safest state to stop in; the engine's rollback re-enables the server.
//     A cancelled ctx likewise leaves the server in DRAIN.
//   - With Config.Force, Drain sets MAINT anyway and returns nil: the
//     operator chose `on_drain_timeout: force`, so the host proceeds. MAINT
//     does not cut the remaining sessions; they finish or end when the app
//     restarts. The override is reported through Config.OnDrainForced, not
//     through an error, so that callers who only see the Balancer interface
//     do not mistake it for a failure.
//   - Enable sets READY and polls until the status is "UP" at full health,
//     or "no check" (a server without health checks). "UP x/y" does not
//     count, although HAProxy routes to such a server: on leaving MAINT,
//     HAProxy 2.6 shows every checked server as "UP 1/3" (rise 2, fall 3)
//     before it has checked it, even one whose app is down, and only the
//     first check after that (within one `inter`) tells "UP" from "DOWN".
//     Returning at "UP 1/3" would let the engine drain the next batch while
//     this server may be about to go DOWN. Outside that window "UP x/y"
//     means the server is failing checks, so waiting is right there too.
//     On timeout the error wraps ErrEnableTimeout and names the last status.
//   - Failures to reach the socket while polling are retried until the
//     timeout (HAProxy drops the socket briefly while it reloads); replies
//     that refuse (unknown server, permission denied) end the call at once.
package haproxy

import (
	"context"
	"errors"
	"fmt"
	"github.com/drover-dev/drover/analysis"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-dev/drover/internal/fence"
)

// Errors callers can test with errors.Is.
var (
	// ErrUnknownServer: the backend or the server does not exist.
	ErrUnknownServer = errors.New("unknown server")
	// ErrPermission: the runtime API socket is not at level admin.
	ErrPermission = errors.New("runtime API permission denied (the socket needs `level admin`)")
	// ErrDrainTimeout: sessions remained after the drain timeout (fail mode).
	ErrDrainTimeout = errors.New("drain timed out")
	// ErrEnableTimeout: the server was not UP within the enable timeout.
	ErrEnableTimeout = errors.New("server not UP in time")
	// ErrUnknownCommand: HAProxy does not know a command (too old a version?).
	ErrUnknownCommand = errors.New("runtime API unknown command")
	// ErrUnexpectedReply: a reply the driver cannot interpret.
	ErrUnexpectedReply = errors.New("unexpected runtime API reply")
	// ErrBadServerName: the server is not written "backend/server".
	ErrBadServerName = errors.New("bad server name")
)

// Defaults for zero Config fields.
const (
	DefaultDrainTimeout  = 30 * time.Second
	DefaultEnableTimeout = 30 * time.Second
	DefaultPollInterval  = 10 * time.Millisecond
	DefaultMaxConns      = 3
	DefaultRetryTimeout  = 10 * time.Second
)

// Config addresses the runtime API and sets the driver's timeouts.
type Config struct {
	Socket  string // unix socket path; exactly one of Socket and Address
	Address string // host:port of a TCP runtime API

	DrainTimeout  time.Duration // default 30s
	EnableTimeout time.Duration // default 30s
	// Force is `on_drain_timeout: force`: after DrainTimeout, set MAINT
	// anyway and succeed instead of failing.
	Force bool
	// PollInterval is the pause between `show stat` polls; default 10ms.
	PollInterval time.Duration
	// MaxConns bounds the connections the driver holds to the runtime API at
	// once; default 3, well under HAProxy's default `stats maxconn 10`, which
	// other tools (monitoring, a second coordinator's reads) share.
	MaxConns int
	// RetryTimeout is how long one command keeps retrying a runtime API it
	// cannot reach (EAGAIN, refused, reset) before failing; default 10s.
	RetryTimeout time.Duration

	// OnDrainForced, if set, is called when a drain timed out and Force put
	// the server in MAINT with sessions still open, so the caller can record
	// it. It must not block.
	OnDrainForced func(server string, sessions int)
}

// Driver talks to one HAProxy process. It is safe for concurrent use; it
// holds no connection between commands, and at most MaxConns during them.
type Driver struct {
	cfg           Config
	network, addr string
	dialer        net.Dialer
	slots         chan struct{} // one per connection in use
	poller        poller
	probeMu       sync.Mutex  // guards probing
	probing       *probeCall  // the admin probe in flight, if any
	admin         atomic.Bool // a probe proved the socket is at level admin
}

// New validates cfg and returns a driver. It does not connect; call Check to
// verify the socket and the servers before relying on them.
func New(cfg Config) (*Driver, error) {
	network, addr, err := dialTarget(cfg.Socket, cfg.Address)
	if err != nil {
		return nil, err
	}
	if cfg.DrainTimeout < 0 || cfg.EnableTimeout < 0 || cfg.PollInterval < 0 || cfg.MaxConns < 0 || cfg.RetryTimeout < 0 {
		return nil, errors.New("haproxy: negative timeout, poll interval or connection count")
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.EnableTimeout == 0 {
		cfg.EnableTimeout = DefaultEnableTimeout
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.RetryTimeout == 0 {
		cfg.RetryTimeout = DefaultRetryTimeout
	}
	d := &Driver{cfg: cfg, network: network, addr: addr, slots: make(chan struct{}, cfg.MaxConns)}
	d.poller.d = d
	return d, nil
}

// Name is the runtime API the driver talks to: its socket path or address.
func (d *Driver) Name() string { return d.addr }

// AdminState is a server's administrative state, set by operators (or by
// this driver), as opposed to its health.
type AdminState string

// Administrative states.
const (
	AdminReady AdminState = "ready" // in rotation as far as the operator is concerned
	AdminDrain AdminState = "drain" // no new requests; sessions in flight finish
	AdminMaint AdminState = "maint" // out of rotation (also config `disabled`, DNS failure, tracking)
)

// Server is one server line of HAProxy's statistics.
type Server struct {
	Backend  string
	Name     string
	Status   string     // HAProxy's status column as printed: "UP", "UP 1/3", "DOWN", "DRAIN", "MAINT", "no check", ...
	Admin    AdminState // from `show servers state` srv_admin_state
	Sessions int        // current sessions (scur)
	Queued   int        // requests queued for this server (qcur)
}

// ID is the server as plans name it: "backend/server".
func (s Server) ID() string { return s.Backend + "/" + s.Name }

// Up reports whether the status means HAProxy routes new requests to the
// server if its admin state allows ("UP", "UP x/y", "no check").
func (s Server) Up() bool { return isUp(s.Status) }

// InRotation reports whether the server can receive new requests.
func (s Server) InRotation() bool { return s.Admin == AdminReady && s.Up() }

// Drain takes server ("backend/server") out of rotation and returns once it
// has no session left, with the server in MAINT. See the package comment for
// the timeout and Force semantics.
func (d *Driver) Drain(ctx context.Context, server string) error {
	backend, name, err := splitServer(server)
	if err != nil {
		return fmt.Errorf("drain %s: %w", server, err)
	}
	if err := d.setState(ctx, backend, name, "drain"); err != nil {
		return fmt.Errorf("drain %s: %w", server, err)
	}
	last, err := d.await(ctx, d.cfg.DrainTimeout, backend, name, func(row statRow) bool {
		return row.scur == 0 && row.qcur == 0
	})
	var timeout *pollTimeout
	switch {
	case err == nil:
	case errors.As(err, &timeout) && d.cfg.Force:
		if err := d.setState(ctx, backend, name, "maint"); err != nil {
			return fmt.Errorf("drain %s: forcing maint after %s: %w", server, d.cfg.DrainTimeout, err)
		}
		if d.cfg.OnDrainForced != nil {
			d.cfg.OnDrainForced(server, last.scur+last.qcur)
		}
		return nil
	case errors.As(err, &timeout):
		return fmt.Errorf("drain %s: %w after %s: %d sessions and %d queued requests remain (server left in drain)%s",
			server, ErrDrainTimeout, d.cfg.DrainTimeout, last.scur, last.qcur, timeout.suffix())
	default:
		return fmt.Errorf("drain %s: %w (server left in drain)", server, err)
	}
	if err := d.setState(ctx, backend, name, "maint"); err != nil {
		return fmt.Errorf("drain %s: %w", server, err)
	}
	return nil
}

// Enable puts server back in rotation (READY) and returns once HAProxy
// reports it UP at full health, which after MAINT takes one passing check.
func (d *Driver) Enable(ctx context.Context, server string) error {
	backend, name, err := splitServer(server)
	if err != nil {
		return fmt.Errorf("enable %s: %w", server, err)
	}
	if err := d.setState(ctx, backend, name, "ready"); err != nil {
		return fmt.Errorf("enable %s: %w", server, err)
	}
	last, err := d.await(ctx, d.cfg.EnableTimeout, backend, name, func(row statRow) bool {
		return isConfirmedUp(row.status)
	})
	var timeout *pollTimeout
	switch {
	case err == nil:
		return nil
	case errors.As(err, &timeout):
		check := ""
		if last.checkStatus != "" {
			check = fmt.Sprintf(", last check %s", last.checkStatus)
		}
		return fmt.Errorf("enable %s: %w after %s: status %q%s%s",
			server, ErrEnableTimeout, d.cfg.EnableTimeout, last.status, check, timeout.suffix())
	default:
		return fmt.Errorf("enable %s: %w", server, err)
	}
}

// Check verifies, without changing anything, that the socket is at level
// admin and that server exists.
//
// The admin probe is `set server B/S state` without a state: HAProxy checks
// the level first ("Permission denied"), then looks the server up ("No such
// backend." / "No such server."), then rejects the missing argument, so the
// command proves both and can change nothing. Once a probe has proved the
// level, later Checks only look for their server in the shared `show stat`
// read, so that checking a whole fleet costs a few commands, not two per
// host.
func (d *Driver) Check(ctx context.Context, server string) error {
	backend, name, err := splitServer(server)
	if err != nil {
		return fmt.Errorf("check %s: %w", server, err)
	}
	if err := d.probeAdmin(ctx, backend, name); err != nil {
		return fmt.Errorf("check %s: %w", server, err)
	}
	var lastErr error
	err = d.poller.watch(ctx, backend, func(s snapshot) (bool, error) {
		var ce *connError
		switch {
		case errors.As(s.err, &ce):
			// command already retried for RetryTimeout: HAProxy is down.
			return false, s.err
		case s.err != nil:
			return false, nameServer(s.err, backend, name)
		}
		_, lastErr = s.row(backend, name)
		return true, lastErr
	})
	if err != nil {
		return fmt.Errorf("check %s: %w", server, err)
	}
	return nil
}

// probeAdmin proves the socket's level with `set server B/S state`, unless
// an earlier probe did. One probe runs at a time and those who wait share
// its outcome when HAProxy could not be reached (each would only wait out
// RetryTimeout again); a refusal that names another server makes the next
// caller probe with its own.
func (d *Driver) probeAdmin(ctx context.Context, backend, name string) error {
	for {
		if d.admin.Load() {
			return nil
		}
		d.probeMu.Lock()
		if d.admin.Load() { // a probe ended since the check above
			d.probeMu.Unlock()
			return nil
		}
		if c := d.probing; c != nil {
			d.probeMu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				return ctxErr(ctx)
			}
			var ce *connError
			if errors.As(c.err, &ce) {
				return c.err
			}
			continue
		}
		c := &probeCall{done: make(chan struct{})}
		d.probing = c
		d.probeMu.Unlock()

		c.err = d.probe(ctx, backend, name)
		d.probeMu.Lock()
		d.probing = nil
		d.probeMu.Unlock()
		close(c.done)
		return c.err
	}
}

// probeCall is a probe in flight, shared by those who wait for it.
type probeCall struct {
	done chan struct{}
	err  error // set before done is closed
}

func (d *Driver) probe(ctx context.Context, backend, name string) error {
	reply, err := d.command(ctx, fmt.Sprintf("set server %s/%s state", backend, name))
	if err != nil {
		return err
	}
	// Any other reply (the usage text) means the level and the server are fine.
	if err := replyError(reply); errors.Is(err, ErrPermission) || errors.Is(err, errNoServer) ||
		errors.Is(err, errNoBackend) || errors.Is(err, ErrUnknownCommand) {
		return nameServer(err, backend, name)
	}
	d.admin.Store(true)
	return nil
}

// View reads one server's state as this HAProxy sees it: status, admin
// state and sessions.
func (d *Driver) View(ctx context.Context, server string) (Server, error) {
	backend, name, err := splitServer(server)
	if err != nil {
		return Server{}, fmt.Errorf("view %s: %w", server, err)
	}
	row, err := d.stat(ctx, backend, name)
	if err != nil {
		return Server{}, fmt.Errorf("view %s: %w", server, err)
	}
	reply, err := d.command(ctx, "show servers state "+backend)
	if err != nil {
		return Server{}, fmt.Errorf("view %s: %w", server, err)
	}
	admin, err := parseServersState(reply)
	if err != nil {
		return Server{}, fmt.Errorf("view %s: %w", server, nameServer(err, backend, name))
	}
	s := Server{Backend: backend, Name: name, Status: row.status, Sessions: row.scur, Queued: row.qcur}
	var ok bool
	if s.Admin, ok = admin[server]; !ok {
		s.Admin = adminFromStatus(row.status)
	}
	return s, nil
}

// Counters reads every server's traffic counters (one `show stat`), for
// the analysis gates: requests, errors (5xx answers, response and
// connection errors) and the recent average response time.
func (d *Driver) Counters(ctx context.Context) (map[string]analysis.Counters, error) {
	reply, err := d.command(ctx, "show stat -1 4 -1")
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	rows, err := parseStat(reply)
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	out := make(map[string]analysis.Counters, len(rows))
	for _, r := range rows {
		out[r.backend+"/"+r.server] = analysis.Counters{
			Requests:     r.reqTot,
			Errors:       r.hrsp5xx + r.eresp + r.econ,
			ResponseTime: time.Duration(r.rtimeMS) * time.Millisecond,
		}
	}
	return out, nil
}

// Servers lists every server of every backend with its status, admin state
// and sessions.
func (d *Driver) Servers(ctx context.Context) ([]Server, error) {
	reply, err := d.command(ctx, "show stat -1 4 -1")
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	rows, err := parseStat(reply)
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	reply, err = d.command(ctx, "show servers state")
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	admin, err := parseServersState(reply)
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	out := make([]Server, 0, len(rows))
	for _, r := range rows {
		s := Server{Backend: r.backend, Name: r.server, Status: r.status, Sessions: r.scur, Queued: r.qcur}
		var ok bool
		if s.Admin, ok = admin[s.ID()]; !ok {
			// Added between the two commands, or an old HAProxy: derive from status.
			s.Admin = adminFromStatus(r.status)
		}
		out = append(out, s)
	}
	return out, nil
}

func adminFromStatus(status string) AdminState {
	first, _, _ := strings.Cut(status, " ")
	switch first {
	case "MAINT":
		return AdminMaint
	case "DRAIN":
		return AdminDrain
	}
	return AdminReady
}

// setState sends `set server B/S state <state>`; success is an empty reply.
func (d *Driver) setState(ctx context.Context, backend, name, state string) error {
	// A drain waits between its two changes: a coordinator deposed
	// meanwhile must not make the second one (see package fence).
	ctx, err := fence.Check(ctx)
	if err != nil {
		return err
	}
	reply, err := d.command(ctx, fmt.Sprintf("set server %s/%s state %s", backend, name, state))
	if err != nil {
		return err
	}
	if err := replyError(reply); err != nil {
		return fmt.Errorf("set state %s: %w", state, nameServer(err, backend, name))
	}
	return nil
}

// stat reads the `show stat` line of one server, asking HAProxy for that
// backend's servers only.
func (d *Driver) stat(ctx context.Context, backend, name string) (statRow, error) {
	reply, err := d.command(ctx, fmt.Sprintf("show stat %s 4 -1", backend))
	if err != nil {
		return statRow{}, err
	}
	rows, err := parseStat(reply)
	if err != nil {
		return statRow{}, nameServer(err, backend, name)
	}
	for _, r := range rows {
		if r.backend == backend && r.server == name {
			return r, nil
		}
	}
	return statRow{}, nameServer(errNoServer, backend, name)
}

// pollTimeout is await's timeout; it carries the last connection error
// seen, if the socket was unreachable at the end.
type pollTimeout struct{ lastConnErr error }

func (e *pollTimeout) Error() string { return "timed out" + e.suffix() }

func (e *pollTimeout) suffix() string {
	if e.lastConnErr == nil {
		return ""
	}
	return "; last error: " + e.lastConnErr.Error()
}

// await watches the shared poller's snapshots of a server until done
// reports true (nil), the timeout passes (*pollTimeout), ctx ends, or a
// read fails with anything but a connection error, which is retried. It
// returns the last row seen.
func (d *Driver) await(ctx context.Context, timeout time.Duration, backend, name string, done func(statRow) bool) (statRow, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errAwaitTimeout)
	defer cancel()
	var last statRow
	var lastConnErr error
	err := d.poller.watch(ctx, backend, func(s snapshot) (bool, error) {
		var ce *connError
		if errors.As(s.err, &ce) {
			lastConnErr = s.err
			return false, nil
		}
		if s.err != nil {
			return false, nameServer(s.err, backend, name)
		}
		lastConnErr = nil
		row, err := s.row(backend, name)
		if err != nil {
			return false, err
		}
		last = row
		return done(row), nil
	})
	if err != nil && errors.Is(context.Cause(ctx), errAwaitTimeout) && ctx.Err() != nil && !errors.Is(err, ErrUnknownServer) {
		return last, &pollTimeout{lastConnErr: lastConnErr}
	}
	return last, err
}

// errAwaitTimeout tells await's own timeout from the caller's deadline.
var errAwaitTimeout = errors.New("haproxy: wait timed out")
