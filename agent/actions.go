package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/health"
	"github.com/drover-dev/drover/internal/atomicfile"
	"github.com/drover-dev/drover/transport/agent/wire"
)

const (
	// flushEvery and flushSize bound how long and how much output waits
	// before it is sent: an operator watching a deploy sees output live.
	flushEvery = 100 * time.Millisecond
	flushSize  = 16 << 10
	// waitDelay bounds the wait for a command's output pipe after the
	// command exits: a daemon started in the background without
	// redirecting its output would otherwise hold the action open forever.
	waitDelay = time.Second
	// defaultCheckTimeout bounds a health check without a timeout.
	defaultCheckTimeout = 2 * time.Second
	// putQueue is how many chunks of a put may wait for the disk: enough to
	// keep the socket busy, small enough to bound memory (4 MiB).
	putQueue = 8
)

// errTimedOut is the cancellation cause of an action's own timeout, which
// tells it apart from the connection dropping.
var errTimedOut = errors.New("action timed out")

// putStream carries a put's chunks from the reader to the put's goroutine.
type putStream struct {
	ch   chan *wire.Chunk
	done chan struct{} // closed when the put no longer reads
}

// action admits a and starts it. It runs in the reader goroutine, so that
// fencing sees actions in the order the leader sent them and a put's
// chunk stream is registered before its first chunk is read; the action
// itself runs in its own goroutine.
func (s *session) action(a *wire.Action) {
	log := s.log.With("id", a.ID, "kind", a.Kind, "term", a.Term)
	if a.ID == "" {
		log.Warn("ignoring an action without an ID")
		return
	}
	s.mu.Lock()
	dup := s.running[a.ID]
	s.mu.Unlock()
	if dup {
		// Answering would end the first action's wait on the leader's
		// side; the leader never reuses IDs, so this is a bug to log.
		log.Error("ignoring an action whose ID is already running")
		return
	}
	max, ok, err := s.a.term.admit(a.Term)
	if err != nil {
		log.Error("cannot persist the fencing term; refusing the action", "err", err)
		s.reply(wire.Result{ID: a.ID, Error: err.Error()})
		return
	}
	if !ok {
		log.Warn("rejected an action from a deposed leader", "max_term", max)
		s.reply(wire.Result{ID: a.ID, Rejected: true, Error: fmt.Sprintf("stale term %d < %d", a.Term, max)})
		return
	}
	if err := validateAction(a); err != nil {
		log.Warn("invalid action", "err", err)
		s.reply(wire.Result{ID: a.ID, Error: err.Error()})
		return
	}

	var ps *putStream
	s.mu.Lock()
	s.running[a.ID] = true
	if a.Kind == wire.KindPut {
		ps = &putStream{ch: make(chan *wire.Chunk, putQueue), done: make(chan struct{})}
		s.puts[a.ID] = ps
	}
	s.mu.Unlock()

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.running, a.ID)
			delete(s.puts, a.ID)
			s.mu.Unlock()
			if ps != nil {
				close(ps.done)
			}
		}()
		s.execute(a, ps, log)
	}()
}

// execute journals a, runs it and delivers its result. The journal entry
// is removed only once the result is sent: if the connection drops first,
// the entry stays and the action is reported lost on the next Hello.
func (s *session) execute(a *wire.Action, ps *putStream, log *slog.Logger) {
	if err := s.a.journal.add(a); err != nil {
		log.Error("cannot journal the action; not running it", "err", err)
		s.reply(wire.Result{ID: a.ID, Error: err.Error()})
		return
	}
	log.Debug("action started", "command", a.Command, "path", a.Path)
	start := time.Now()
	var res wire.Result
	switch a.Kind {
	case wire.KindRun:
		res = s.run(a)
	case wire.KindPut:
		res = s.put(a, ps)
	case wire.KindCheck:
		res = s.check(a)
	}
	res.ID = a.ID
	if s.ctx.Err() != nil {
		log.Warn("action interrupted by the end of the connection; it will be reported lost", "after", time.Since(start).Round(time.Millisecond))
		return
	}
	if err := s.send(wire.Frame{Type: wire.TypeResult, Result: &res}); err != nil {
		log.Warn("could not deliver the result; the action will be reported lost", "err", err)
		return
	}
	if err := s.a.journal.remove(a.ID); err != nil {
		log.Warn("could not remove the journal entry", "err", err)
	}
	log.Info("action done", "took", time.Since(start).Round(time.Millisecond), "exit_code", res.ExitCode, "error", res.Error)
}

// reply sends a result for an action that did not run (rejected or
// invalid), from its own goroutine so that the reader never waits on a
// write.
func (s *session) reply(res wire.Result) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.send(wire.Frame{Type: wire.TypeResult, Result: &res}); err != nil {
			s.log.Debug("could not send a result", "id", res.ID, "err", err)
		}
	}()
}

// chunk hands c to its put. Chunks of an unknown put (rejected, failed or
// finished) are dropped: the put's result says what happened.
func (s *session) chunk(c *wire.Chunk) {
	s.mu.Lock()
	ps := s.puts[c.ID]
	s.mu.Unlock()
	if ps == nil {
		s.log.Debug("dropping a chunk of no running put", "id", c.ID)
		return
	}
	select {
	case ps.ch <- c:
	case <-ps.done:
	case <-s.ctx.Done():
	}
}

func validateAction(a *wire.Action) error {
	if a.Timeout < 0 {
		return fmt.Errorf("negative timeout %s", time.Duration(a.Timeout))
	}
	switch a.Kind {
	case wire.KindRun:
		if strings.TrimSpace(a.Command) == "" {
			return errors.New("run: empty command")
		}
	case wire.KindPut:
		if !filepath.IsAbs(a.Path) {
			return fmt.Errorf("put: path %q is not absolute", a.Path)
		}
		if a.Size < 0 {
			return fmt.Errorf("put: negative size %d", a.Size)
		}
		if b, err := hex.DecodeString(a.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("put: sha256 %q is not a hex SHA-256 digest", a.SHA256)
		}
		if a.Mode&^0o7777 != 0 {
			return fmt.Errorf("put: mode %#o has bits beyond 07777", a.Mode)
		}
	case wire.KindCheck:
		if a.Check == nil || (a.Check.HTTP == "") == (a.Check.TCP == "") {
			return errors.New("check: exactly one of http and tcp must be set")
		}
	default:
		return fmt.Errorf("unknown action kind %q (this agent knows %s, %s and %s)", a.Kind, wire.KindRun, wire.KindPut, wire.KindCheck)
	}
	return nil
}

// withTimeout bounds an action by its own timeout (0: only the connection).
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, d, errTimedOut)
}

// run runs a.Command with /bin/sh in its own process group, so that a
// timeout kills the whole pipeline, not just the shell.
func (s *session) run(a *wire.Action) wire.Result {
	timeout := time.Duration(a.Timeout)
	ctx, cancel := withTimeout(s.ctx, timeout)
	defer cancel()
	out := &outputStream{s: s, id: a.ID}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", a.Command)
	cmd.Stdin = nil // /dev/null: a command waiting for input would hang the deploy
	// Without Streams, one writer for both: exec then uses a single pipe,
	// so stdout and stderr stay in the order they were written.
	errOut := out
	if a.Streams {
		errOut = &outputStream{s: s, id: a.ID, stderr: true}
	}
	cmd.Stdout, cmd.Stderr = out, errOut
	cmd.WaitDelay = waitDelay
	setProcessGroup(cmd)
	err := cmd.Run()
	out.close()
	errOut.close()

	res := wire.Result{Truncated: out.truncated() || errOut.truncated()}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	} else {
		res.ExitCode = -1
	}
	var ee *exec.ExitError
	switch {
	case errors.Is(context.Cause(ctx), errTimedOut):
		res.Error = fmt.Sprintf("timed out after %s", timeout)
	case err == nil:
	case errors.Is(err, exec.ErrWaitDelay) && res.ExitCode == 0:
		// The command succeeded; something it left in the background
		// still holds its output. That is its business.
	case errors.As(err, &ee):
		res.Error = ee.Error() // "exit status N" or "signal: killed"
	default:
		res.Error = err.Error()
	}
	return res
}

// outputStream sends a run's output as Output frames: at most flushSize
// bytes each, none waiting longer than flushEvery, wire.MaxOutput in all.
// Beyond that it keeps accepting (and dropping) output, so the command
// never blocks on a full pipe.
type outputStream struct {
	s      *session
	id     string
	stderr bool // this is the run's stderr (wire.Action.Streams)

	mu     sync.Mutex
	buf    []byte
	kept   int // bytes accepted for sending
	trunc  bool
	timer  *time.Timer
	closed bool
}

// Write buffers p. Sending happens under the lock, so a slow connection
// slows the command down rather than growing the buffer.
func (o *outputStream) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(p)
	if o.closed {
		return n, nil
	}
	if room := wire.MaxOutput - o.kept; len(p) > room {
		p = p[:room]
		o.trunc = true
	}
	o.kept += len(p)
	o.buf = append(o.buf, p...)
	if len(o.buf) >= flushSize {
		o.flushLocked()
	} else if len(o.buf) > 0 && o.timer == nil {
		o.timer = time.AfterFunc(flushEvery, o.tick)
	}
	return n, nil
}

func (o *outputStream) tick() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.timer = nil
	if !o.closed {
		o.flushLocked()
	}
}

func (o *outputStream) flushLocked() {
	for len(o.buf) > 0 {
		n := min(len(o.buf), flushSize)
		data := append([]byte(nil), o.buf[:n]...)
		o.buf = o.buf[n:]
		// A failed send means the connection is gone; the action is
		// being cancelled and its output has nowhere to go.
		_ = o.s.send(wire.Frame{Type: wire.TypeOutput, Output: &wire.Output{ID: o.id, Data: data, Stderr: o.stderr}})
	}
	o.buf = nil
}

// close sends what is left; after it, nothing more is sent, so the result
// that follows is the action's last frame.
func (o *outputStream) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	o.flushLocked()
	o.closed = true
}

func (o *outputStream) truncated() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.trunc
}

// put writes the chunks of a into a temp file beside a.Path, checks them
// against a.Size and a.SHA256, and renames the file over a.Path: readers
// of a.Path see the old file or the whole new one, never a part.
func (s *session) put(a *wire.Action, ps *putStream) wire.Result {
	ctx, cancel := withTimeout(s.ctx, time.Duration(a.Timeout))
	defer cancel()
	if err := writeChunks(ctx, a, ps); err != nil {
		if errors.Is(context.Cause(ctx), errTimedOut) {
			err = fmt.Errorf("put %s: timed out after %s", a.Path, time.Duration(a.Timeout))
		}
		return wire.Result{Error: err.Error()}
	}
	return wire.Result{}
}

func writeChunks(ctx context.Context, a *wire.Action, ps *putStream) error {
	if err := os.MkdirAll(filepath.Dir(a.Path), 0o755); err != nil {
		return fmt.Errorf("put %s: %w", a.Path, err)
	}
	err := atomicfile.WriteFunc(a.Path, fileMode(a.Mode), func(w io.Writer) error {
		h := sha256.New()
		var size int64
		for eof := false; !eof; {
			var c *wire.Chunk
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case c = <-ps.ch:
			}
			size += int64(len(c.Data))
			if size > a.Size {
				return fmt.Errorf("more data than the announced size of %d bytes", a.Size)
			}
			if _, err := w.Write(c.Data); err != nil {
				return err
			}
			h.Write(c.Data)
			eof = c.EOF
		}
		if size != a.Size {
			return fmt.Errorf("size mismatch: got %d bytes, want %d", size, a.Size)
		}
		if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, a.SHA256) {
			return fmt.Errorf("checksum mismatch: got sha256 %s, want %s", got, strings.ToLower(a.SHA256))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", a.Path, err)
	}
	return nil
}

// fileMode converts a Unix mode (as chmod takes it) into Go's FileMode,
// whose setuid, setgid and sticky bits live elsewhere. 0 means 0644.
func fileMode(m uint32) fs.FileMode {
	if m == 0 {
		return 0o644
	}
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// check makes a health check from the host itself, with the checks the
// engine uses over SSH, so both transports judge health the same way.
func (s *session) check(a *wire.Action) wire.Result {
	timeout := time.Duration(a.Timeout)
	if timeout <= 0 {
		timeout = defaultCheckTimeout
	}
	var c health.Checker
	if a.Check.HTTP != "" {
		c = health.HTTP(a.Check.HTTP, a.Check.Status, a.Check.BodyContains, timeout)
	} else {
		c = health.TCP(a.Check.TCP, timeout)
	}
	start := time.Now()
	if err := c.Check(s.ctx); err != nil {
		// The checker's timer starts after start: a failure that comes
		// once timeout has passed is that timer's.
		return wire.Result{Error: err.Error(), TimedOut: time.Since(start) >= timeout}
	}
	return wire.Result{}
}
