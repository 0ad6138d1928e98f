package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/fence"
)

// commandTimeout bounds one runtime API exchange when ctx has no earlier
// deadline, so that a wedged HAProxy cannot hang a deployment forever.
const commandTimeout = 10 * time.Second

// maxReply bounds what one reply may hold (a `show stat` of a very large
// configuration is a few MiB).
const maxReply = 64 << 20

// connError marks a failure to talk to the runtime API at all (dial, write,
// read), as opposed to a reply that says no. Waits retry it until their
// timeout, because HAProxy briefly drops its socket while it reloads.
type connError struct{ err error }

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// command sends one command and returns the whole reply. Failures to talk
// to HAProxy at all (connErrors: EAGAIN when its stats socket already holds
// `stats maxconn` connections, refused or missing while it reloads, a
// dropped connection) are retried with backoff for up to RetryTimeout:
// every command the driver sends is idempotent, so sending one again is
// safe. Replies that refuse are returned at once.
func (d *Driver) command(ctx context.Context, cmd string) (string, error) {
	return d.commandUntil(ctx, nil, cmd)
}

// commandUntil is command that also stops retrying (but lets an exchange
// in flight finish, so that HAProxy never holds a connection the driver
// has stopped counting) once giveUp is closed.
func (d *Driver) commandUntil(ctx context.Context, giveUp <-chan struct{}, cmd string) (string, error) {
	var retry *time.Timer
	backoff := minBackoff
	for {
		reply, err := d.commandOnce(ctx, cmd)
		var ce *connError
		if err == nil || !errors.As(err, &ce) {
			return reply, err
		}
		if retry == nil {
			retry = time.NewTimer(d.cfg.RetryTimeout)
			defer retry.Stop()
		}
		wait := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			wait.Stop()
			return "", fmt.Errorf("runtime API %s: %w (last error: %v)", d.addr, ctxErr(ctx), err)
		case <-retry.C:
			wait.Stop()
			return "", err
		case <-giveUp:
			wait.Stop()
			return "", err
		case <-wait.C:
		}
		backoff = min(2*backoff, maxBackoff)
		// The caller's leadership was confirmed before the first attempt;
		// a retry may come seconds later (a link that heals), so confirm
		// it again before sending the command once more.
		if ctx, err = fence.Check(ctx); err != nil {
			return "", err
		}
	}
}

// Backoff between attempts to reach a runtime API that refused a connection.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = 250 * time.Millisecond
)

// commandOnce sends one command on a fresh connection, holding one of the
// driver's MaxConns slots. HAProxy's runtime API, in its default
// non-interactive mode, answers one line and closes the connection, so the
// reply ends at EOF.
func (d *Driver) commandOnce(parent context.Context, cmd string) (string, error) {
	select {
	case d.slots <- struct{}{}:
	case <-parent.Done():
		return "", fmt.Errorf("runtime API %s: %w", d.addr, ctxErr(parent))
	}
	defer func() { <-d.slots }()
	ctx, cancel := context.WithTimeout(parent, commandTimeout)
	defer cancel()
	// fail reports err as the caller's cancellation when that is what
	// happened, else as a (retryable) failure to talk to HAProxy.
	fail := func(err error) error {
		if parent.Err() != nil {
			return fmt.Errorf("runtime API %s: %w", d.addr, ctxErr(parent))
		}
		return &connError{fmt.Errorf("runtime API %s: %q: %w", d.addr, cmd, err)}
	}
	conn, err := d.dialer.DialContext(ctx, d.network, d.addr)
	if err != nil {
		return "", fail(err)
	}
	answered := false
	defer func() {
		// A command abandoned midway (a link cut, a caller that stopped
		// leading) must never reach HAProxy later: a plain close leaves
		// its bytes in the kernel's send queue, retransmitted once the
		// link heals, on behalf of a coordinator that may no longer lead.
		// Reset the connection instead, which discards them.
		if tc, ok := conn.(*net.TCPConn); ok && !answered {
			_ = tc.SetLinger(0)
		}
		conn.Close()
	}()
	// Unblock reads and writes as soon as ctx ends. (Not SetDeadline from
	// ctx.Deadline: that can fire a moment before ctx reports its error.)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fail(err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, maxReply+1))
	if err != nil {
		return "", fail(err)
	}
	answered = true
	if len(b) > maxReply {
		return "", fmt.Errorf("runtime API %s: reply to %q exceeds %d bytes", d.addr, cmd, maxReply)
	}
	return string(b), nil
}

// Kinds of error replies, before the caller names the server involved.
var (
	errNoServer  = errors.New("no such server")
	errNoBackend = errors.New("no such backend")
)

// replyError turns a runtime API reply into an error: nil for an empty reply
// (what successful `set` commands print), a sentinel for the replies HAProxy
// uses to refuse, and ErrUnexpectedReply for anything else.
func replyError(reply string) error {
	text := strings.TrimSpace(reply)
	if text == "" {
		return nil
	}
	first, _, _ := strings.Cut(text, "\n")
	first = strings.TrimSpace(first)
	switch {
	case first == "Permission denied":
		return ErrPermission
	case strings.HasPrefix(first, "Unknown command"):
		return fmt.Errorf("%w: %s", ErrUnknownCommand, first)
	case first == "No such server.":
		return errNoServer
	case first == "No such backend.", first == "No such proxy.", first == "Can't find backend.":
		return errNoBackend
	}
	return fmt.Errorf("%w: %q", ErrUnexpectedReply, first)
}

// nameServer turns the anonymous "no such server/backend" replies into
// ErrUnknownServer naming the backend and server asked about.
func nameServer(err error, backend, server string) error {
	switch {
	case errors.Is(err, errNoServer):
		return fmt.Errorf("%w: backend %q has no server %q", ErrUnknownServer, backend, server)
	case errors.Is(err, errNoBackend):
		return fmt.Errorf("%w: no backend %q (looking for server %q)", ErrUnknownServer, backend, server)
	}
	return err
}

// splitServer parses "backend/server". Names are restricted to the
// characters HAProxy accepts in proxy and server names, which also keeps a
// name from smuggling a second command (';' or a newline) into the socket.
func splitServer(s string) (backend, server string, err error) {
	backend, server, ok := strings.Cut(s, "/")
	if !ok || !validName(backend) || !validName(server) {
		return "", "", fmt.Errorf("%w: %q, want <backend>/<server> (letters, digits, '-', '_', '.', ':')", ErrBadServerName, s)
	}
	return backend, server, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '-', r == '_', r == '.', r == ':':
		default:
			return false
		}
	}
	return true
}

// dialTarget resolves the configured endpoint.
func dialTarget(socket, address string) (network, addr string, err error) {
	switch {
	case socket != "" && address != "":
		return "", "", errors.New("haproxy: set exactly one of socket and address, not both")
	case socket != "":
		return "unix", socket, nil
	case address != "":
		if _, _, err := net.SplitHostPort(address); err != nil {
			return "", "", fmt.Errorf("haproxy: address %q: %w", address, err)
		}
		return "tcp", address, nil
	}
	return "", "", errors.New("haproxy: set the runtime API socket or address")
}

// ctxErr returns the error to report for a done ctx: ctx.Err(), and its
// cause when that differs, both visible to errors.Is.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}
