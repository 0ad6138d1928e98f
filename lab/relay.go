package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/atomicfile"
)

// haproxyAdminPort is where the relay in the balancer namespace listens:
// Lab.HAProxyAddress is "<balancer address>:9999".
const haproxyAdminPort = 9999

// RelayConfig configures RunHAProxyRelay.
type RelayConfig struct {
	Listen string    // TCP host:port to accept clients on
	Socket string    // HAProxy's runtime API unix socket
	Log    string    // the audit log: one line per command, appended
	Ready  string    // if set, written (with the PID) once Listen accepts
	Errors io.Writer // connection errors; nil: discarded
}

// RunHAProxyRelay serves HAProxy's runtime API over TCP until ctx ends: each
// connection is joined to a fresh connection to the unix socket and bytes are
// passed through unchanged both ways (one command per connection, several
// separated by ";", or the interactive "prompt" mode alike). Every command
// line a client sends is logged to cfg.Log before it is passed on: one line
// per command, "<unix ns> <client IP> <command>" (see LBAudit). It is what
// the hidden `drover-lab relay` runs in the lab's balancer namespace.
func RunHAProxyRelay(ctx context.Context, cfg RelayConfig) error {
	if cfg.Listen == "" || cfg.Socket == "" || cfg.Log == "" {
		return errors.New("relay: needs a listen address, a socket and a log")
	}
	logf, err := os.OpenFile(cfg.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	if cfg.Ready != "" {
		if err := atomicfile.Write(cfg.Ready, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			ln.Close()
			return err
		}
	}
	errw := cfg.Errors
	if errw == nil {
		errw = io.Discard
	}
	return serveRelay(ctx, ln, cfg.Socket, logf, errw)
}

// relay joins TCP clients to HAProxy's unix socket.
type relay struct {
	socket string
	errs   io.Writer

	mu  sync.Mutex // one Write per log line, in order
	log io.Writer
}

// serveRelay accepts on ln until ctx ends (then it closes ln and waits for
// the open connections).
func serveRelay(ctx context.Context, ln net.Listener, socket string, log, errs io.Writer) error {
	r := &relay{socket: socket, log: log, errs: errs}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.handle(c)
		}()
	}
}

// afterClose bounds how long a client may keep its side open once HAProxy
// has closed the connection.
const afterClose = 5 * time.Second

// maxLoggedLine bounds one logged command line (HAProxy's own buffer is
// 16 KiB); the rest of a longer line is passed on but not logged.
const maxLoggedLine = 64 << 10

func (r *relay) handle(c net.Conn) {
	defer c.Close()
	from, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		from = c.RemoteAddr().String()
	}
	up, err := net.Dial("unix", r.socket)
	if err != nil {
		fmt.Fprintf(r.errs, "relay: %s: %v\n", from, err)
		return
	}
	defer up.Close()

	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(c, up)
		// HAProxy ended the session: the client sees EOF once it has read
		// the answer.
		if tc, ok := c.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		_ = c.SetReadDeadline(time.Now().Add(afterClose))
	}()

	var line []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			line = r.logLines(from, line, buf[:n])
			if _, werr := up.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			if len(line) > 0 { // a last command without its newline
				r.logLine(from, line)
			}
			break
		}
	}
	if uc, ok := up.(interface{ CloseWrite() error }); ok {
		_ = uc.CloseWrite()
	}
	select {
	case <-done:
	case <-time.After(afterClose):
	}
}

// logLines logs every complete line of pending+chunk and returns what is
// left of an unfinished line.
func (r *relay) logLines(from string, pending, chunk []byte) []byte {
	for {
		i := -1
		for j, b := range chunk {
			if b == '\n' {
				i = j
				break
			}
		}
		if i < 0 {
			room := maxLoggedLine - len(pending)
			if room > len(chunk) {
				room = len(chunk)
			}
			if room > 0 {
				pending = append(pending, chunk[:room]...)
			}
			return pending
		}
		if room := maxLoggedLine - len(pending); room > 0 {
			pending = append(pending, chunk[:min(i, room)]...)
		}
		r.logLine(from, pending)
		pending = pending[:0]
		chunk = chunk[i+1:]
	}
}

// logLine logs each command of one line, all with the same time.
func (r *relay) logLine(from string, line []byte) {
	cmds := splitCommands(strings.TrimSuffix(string(line), "\r"))
	if len(cmds) == 0 {
		return
	}
	now := time.Now()
	var b []byte
	for _, c := range cmds {
		b = append(b, auditLine(now, from, c)...)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.log.Write(b); err != nil {
		fmt.Fprintf(r.errs, "relay: log: %v\n", err)
	}
}

// splitCommands splits a runtime API line into its commands the way HAProxy
// does: at each ";" not escaped by a backslash. Blank commands are dropped.
func splitCommands(line string) []string {
	var out []string
	start := 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case ';':
			if c := strings.TrimSpace(line[start:i]); c != "" {
				out = append(out, c)
			}
			start = i + 1
		}
	}
	if c := strings.TrimSpace(line[start:]); c != "" {
		out = append(out, c)
	}
	return out
}

// startRelay starts `<tool> relay` in the balancer namespace and waits until
// it listens.
func (l *Lab) startRelay(ctx context.Context, tool string) error {
	ready := filepath.Join(l.Dir, "haproxy-relay.pid")
	os.Remove(ready)
	logPath := filepath.Join(l.Dir, "haproxy-relay.log")
	cmd := exec.Command("ip", "netns", "exec", l.LBNS, tool, "relay",
		"--listen", l.HAProxyAddress, "--socket", l.HAProxySocket, "--log", l.lbAuditPath(), "--ready", ready)
	d, err := startDaemon("haproxy-relay", logPath, cmd)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.daemons[d.name] = d
	l.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil && strings.TrimSpace(string(b)) != "" {
			return nil
		}
		if d.exited() {
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("haproxy relay (%s relay) %w: %s", tool, errDaemonExited, strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("haproxy relay (%s relay) did not listen within 10s: %s", tool, strings.TrimSpace(string(b)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
