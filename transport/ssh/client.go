package ssh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/drover-dev/drover/internal/fence"
	"github.com/drover-dev/drover/internal/shell"
	"github.com/drover-dev/drover/internal/tail"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// killGrace is how long Run waits for a killed command's session to end
// before it gives up on the connection.
const killGrace = 2 * time.Second

// sessionKillGrace is how long Run waits for the shell session to report
// the end of a command it killed before it replaces the session. Longer
// than killGrace: replacing the session costs a login shell start.
const sessionKillGrace = 5 * time.Second

// Client is one SSH connection to one host, reused by every call. A broken
// connection is redialled (once per call). Safe for concurrent use, though
// the engine uses it from one goroutine.
type Client struct {
	d          *Dialer
	addr       string
	handshakes atomic.Int64

	mu     sync.Mutex
	cur    *conn // nil after a failed redial
	closed bool
}

// Addr is the host:port this client connects to.
func (c *Client) Addr() string { return c.addr }

// Handshakes is the number of successful SSH handshakes this client made:
// 1 for the initial dial, plus one per redial.
func (c *Client) Handshakes() int { return int(c.handshakes.Load()) }

// Close closes the connection. Later calls fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.cur == nil {
		return nil
	}
	err := c.cur.close()
	c.cur = nil
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Run runs cmd through the remote user's (sh-compatible) login shell, in a
// small wrapper (see wrapCommand); stdout goes to out (nil discards), and
// stderr to out's Stderr() when out has that method (so a caller can keep
// the streams apart), else to out too; stdin is /dev/null. A non-zero exit is an error wrapping
// *ExitError. When ctx ends first, the command and everything it started in
// its process group are killed, its session closed, and the error wraps
// ctx.Err(). A call that fails because the connection broke is retried once
// on a new connection, so a command may run twice: keep commands idempotent.
func (c *Client) Run(ctx context.Context, cmd string, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	var w io.Writer = &syncWriter{w: out}
	if s, ok := out.(interface{ Stderr() io.Writer }); ok {
		w = splitWriter{&syncWriter{w: out, errw: s.Stderr()}}
	}
	err := c.do(ctx, nil, func(cn *conn) error { return cn.run(ctx, cmd, w) })
	if err != nil {
		return fmt.Errorf("ssh %s: %w", c.addr, err)
	}
	return nil
}

// Put writes r to path atomically: into a temp file beside it
// (.NAME.drover-tmp-RANDOM), synced and chmod'ed to mode, then renamed over
// path. Parent directories are created. The temp file is removed on failure.
func (c *Client) Put(ctx context.Context, p string, r io.Reader, mode fs.FileMode) error {
	src := &countingReader{ctx: ctx, r: r}
	rewind := rewinder(src)
	size := remaining(r)
	err := c.do(ctx, rewind, func(cn *conn) error {
		if size >= 0 {
			s, err := cn.session(ctx)
			if err != nil {
				return err
			}
			if s != nil {
				err := s.waitReady(ctx)
				if err == nil {
					return cn.putSession(ctx, s, p, src, size, mode)
				}
				if !errors.Is(err, errNoSession) {
					return err
				}
				cn.noSession(s)
			}
		}
		return cn.put(ctx, p, src, mode)
	})
	if err != nil {
		return fmt.Errorf("ssh %s: put %s: %w", c.addr, p, err)
	}
	return nil
}

// remaining is how many bytes r has left to read, -1 when it cannot tell
// (not an io.Seeker).
func remaining(r io.Reader) int64 {
	sk, ok := r.(io.Seeker)
	if !ok {
		return -1
	}
	cur, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return -1
	}
	end, err := sk.Seek(0, io.SeekEnd)
	if _, err2 := sk.Seek(cur, io.SeekStart); err != nil || err2 != nil {
		return -1
	}
	return end - cur
}

// rewinder returns the func that prepares src for a retry: nothing to do
// when nothing was read, a seek back when the source is an io.Seeker, and an
// error otherwise (a retry would upload a truncated file).
func rewinder(src *countingReader) func() error {
	start := int64(-1)
	seeker, ok := src.r.(io.Seeker)
	if ok {
		if off, err := seeker.Seek(0, io.SeekCurrent); err == nil {
			start = off
		}
	}
	return func() error {
		if src.n == 0 {
			return nil
		}
		if start < 0 {
			return errors.New("the source was partly read and cannot be rewound")
		}
		if _, err := seeker.Seek(start, io.SeekStart); err != nil {
			return fmt.Errorf("rewinding the source: %w", err)
		}
		src.n = 0
		return nil
	}
}

// do runs op on the current connection and, when it failed because the
// transport broke, once more on a fresh one.
func (c *Client) do(ctx context.Context, rewind func() error, op func(*conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cn, err := c.conn(ctx)
	if err != nil {
		return err
	}
	first := op(cn)
	if first == nil || !retryable(ctx, cn, first) {
		return first
	}
	if rewind != nil {
		if err := rewind(); err != nil {
			return fmt.Errorf("%w (connection lost; not retried: %v)", first, err)
		}
	}
	cn, err = c.redial(ctx, cn)
	if err != nil {
		return fmt.Errorf("%w (connection lost; reconnecting failed: %w)", first, err)
	}
	if err := op(cn); err != nil {
		return fmt.Errorf("%w (after reconnecting; the first attempt failed: %w)", err, first)
	}
	return nil
}

// conn returns the current connection, dialling one if a previous redial
// failed.
func (c *Client) conn(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	cn, closed := c.cur, c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return nil, ErrClosed
	case cn != nil:
		return cn, nil
	}
	return c.redial(ctx, nil)
}

// redial replaces broken with a new connection, unless another caller did
// so already.
func (c *Client) redial(ctx context.Context, broken *conn) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.cur != nil && c.cur != broken && !c.cur.isDead() {
		return c.cur, nil
	}
	if c.cur != nil {
		_ = c.cur.close()
		c.cur = nil
	}
	cn, err := c.d.connect(ctx, c.addr)
	if err != nil {
		return nil, err
	}
	c.cur = cn
	c.handshakes.Add(1)
	return cn, nil
}

// retryable says whether err means the transport broke (so that a new
// connection may succeed), as opposed to the command or the file operation
// failing, or the caller giving up.
func retryable(ctx context.Context, cn *conn, err error) bool {
	var exit *ExitError
	var status *sftp.StatusError
	var netErr net.Error
	switch {
	case ctx.Err() != nil,
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &exit), errors.Is(err, ErrClosed):
		return false
	case cn.isDead():
		return true
	case errors.As(err, &status):
		return false
	}
	var missing *ssh.ExitMissingError
	return errors.Is(err, errSessionLost) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, sftp.ErrSSHFxConnectionLost) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &netErr) || errors.As(err, &missing)
}

// conn is one SSH connection with its lazily opened SFTP session.
type conn struct {
	ssh      *ssh.Client
	dead     chan struct{} // closed once the transport is gone
	stop     chan struct{} // stops the keepalive loop
	stopOnce sync.Once

	sftpMu sync.Mutex
	sftp   *sftp.Client

	// The shell session commands run through (session.go); noShell when
	// the host cannot run one or the Dialer is configured not to.
	shellMu    sync.Mutex
	shell      *shellSession
	noShell    bool
	shellGrace time.Duration // sessionKillGrace

	*counters // the Dialer's
}

func newConn(sc *ssh.Client, keepAlive time.Duration, perCommand bool, cs *counters) *conn {
	cn := &conn{ssh: sc, dead: make(chan struct{}), stop: make(chan struct{}), noShell: perCommand, counters: cs}
	go func() {
		_ = sc.Wait()
		close(cn.dead)
	}()
	if keepAlive > 0 {
		go cn.keepAlive(keepAlive)
	}
	return cn
}

func (cn *conn) isDead() bool {
	select {
	case <-cn.dead:
		return true
	default:
		return false
	}
}

// close closes the transport first: that unblocks whatever waits on it,
// including an SFTP start holding sftpMu.
func (cn *conn) close() error {
	cn.stopOnce.Do(func() { close(cn.stop) })
	err := cn.ssh.Close()
	cn.shellMu.Lock()
	if cn.shell != nil {
		cn.shell.close()
	}
	cn.shellMu.Unlock()
	cn.sftpMu.Lock()
	sc := cn.sftp
	cn.sftp = nil
	cn.sftpMu.Unlock()
	if sc != nil {
		_ = sc.Close()
	}
	return err
}

// keepAlive sends keepalive@openssh.com every interval; when keepAliveMaxMissed
// intervals pass without a reply, the connection is closed, which fails any
// call in progress quickly and makes the next one redial.
func (cn *conn) keepAlive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var reply chan error // non-nil while a request is outstanding
	missed := 0
	for {
		select {
		case <-cn.stop:
			return
		case <-cn.dead:
			return
		case err := <-reply:
			reply = nil
			if err != nil {
				_ = cn.ssh.Close()
				return
			}
			missed = 0
		case <-t.C:
			if reply != nil {
				missed++
				if missed >= keepAliveMaxMissed {
					_ = cn.ssh.Close()
					return
				}
				continue
			}
			reply = make(chan error, 1)
			go func(ch chan<- error) {
				_, _, err := cn.ssh.SendRequest("keepalive@openssh.com", true, nil)
				ch <- err
			}(reply)
		}
	}
}

// closeOnDone closes the whole connection if ctx ends before the returned
// stop func is called: for library calls that cannot be interrupted
// otherwise (opening a channel on an unresponsive connection).
func (cn *conn) closeOnDone(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { _ = cn.close() })
}

// run runs cmd through the connection's shell session, or in a session of
// its own where there is none.
func (cn *conn) run(ctx context.Context, cmd string, out io.Writer) error {
	cn.commands.Add(1)
	if frameable(cmd) {
		s, err := cn.session(ctx)
		if err != nil {
			return err
		}
		if s != nil {
			err := s.run(ctx, cmd, out)
			if !errors.Is(err, errNoSession) {
				return err
			}
			cn.noSession(s) // the command did not run: run it alone
		}
	}
	return cn.runAlone(ctx, cmd, out)
}

// runAlone runs cmd in an SSH session of its own: one login shell start.
func (cn *conn) runAlone(ctx context.Context, cmd string, out io.Writer) error {
	// Opening a channel cannot be interrupted on its own: if ctx ends while
	// the connection does not answer, the connection goes.
	stop := cn.closeOnDone(ctx)
	sess, err := cn.ssh.NewSession()
	if !stop() {
		if sess != nil {
			_ = sess.Close()
		}
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("open session: %w", err)
	}
	cn.channels.Add(1)
	cn.requests.Add(1)
	defer sess.Close()
	sess.Stdout = out
	sess.Stderr = stderrOf(out)
	// Nothing is ever written to stdin: it stays open while the command
	// runs, and its EOF tells the wrapper's watcher to kill the command.
	stdin, err := sess.StdinPipe()
	if err != nil {
		return fmt.Errorf("open session: %w", err)
	}

	// From here on, ctx's end kills the command: EOF on stdin (the watcher
	// kills the process group), the KILL signal (honoured by sshd only with
	// post-auth privilege separation, which OpenSSH skips for root), and
	// closing the session.
	kill := context.AfterFunc(ctx, func() {
		_ = stdin.Close()
		_ = sess.Signal(ssh.SIGKILL)
		_ = sess.Close()
	})
	if err := sess.Start(wrapCommand(cmd)); err != nil {
		if !kill() {
			return fmt.Errorf("command interrupted: %w", ctx.Err())
		}
		return fmt.Errorf("start command: %w", err)
	}

	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err := <-done:
		if !kill() {
			return fmt.Errorf("command interrupted: %w", ctx.Err())
		}
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			return &ExitError{Code: ee.ExitStatus(), Signal: ee.Signal(), Cmd: cmd}
		}
		return err
	case <-ctx.Done():
	}
	// Wait briefly for the session to end so that out is no longer written
	// to when Run returns; if it does not end, the connection is unhealthy:
	// drop it.
	select {
	case <-done:
	case <-time.After(killGrace):
		_ = cn.close()
		<-done
	}
	return fmt.Errorf("command interrupted: %w", ctx.Err())
}

// wrapCommand makes cmd killable from this side, whatever sshd does with
// signal requests. sshd starts the login shell in a new session (setsid), so
// the shell, the command and its children share one process group. A
// background watcher blocks reading the channel's stdin (the command itself
// gets /dev/null); EOF, sent when Run is cancelled or the connection closes,
// makes the watcher kill that process group. On normal completion the
// watcher is stopped first, so background processes the command leaves
// behind (an app started by a restart script) are not touched. The command
// runs through eval in a subshell of the login shell, as it would unwrapped:
// the login shell must be sh-compatible (sh, bash, dash, ksh, zsh).
func wrapCommand(cmd string) string {
	quoted := shell.Quote(cmd)
	return "exec 3<&0 </dev/null\n" +
		"(while read -r __drover_l <&3; do :; done; kill -KILL 0) >/dev/null 2>&1 &\n" +
		"__drover_w=$!\n" +
		"exec 3<&-\n" +
		"(eval " + quoted + ")\n" +
		"__drover_s=$?\n" +
		"kill $__drover_w 2>/dev/null\n" +
		"exit $__drover_s\n"
}

// withSFTP runs fn with the connection's SFTP client, opening it on first
// use. If ctx ends during fn, the SFTP session is torn down (a fresh one is
// opened by the next call), which unblocks fn.
func (cn *conn) withSFTP(ctx context.Context, fn func(*sftp.Client) error) error {
	sc, err := cn.sftpClient(ctx)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { cn.dropSFTP(sc) })
	err = fn(sc)
	if !stop() {
		// Make sure the torn-down session is no longer cached before the
		// caller (say, a cleanup) asks for one again.
		cn.dropSFTP(sc)
		if err != nil {
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
	}
	return err
}

func (cn *conn) sftpClient(ctx context.Context) (*sftp.Client, error) {
	cn.sftpMu.Lock()
	defer cn.sftpMu.Unlock()
	if cn.sftp != nil {
		return cn.sftp, nil
	}
	stop := cn.closeOnDone(ctx)
	cn.channels.Add(1)
	cn.requests.Add(1)
	sc, err := sftp.NewClient(cn.ssh, sftp.UseConcurrentWrites(true))
	if !stop() {
		if sc != nil {
			_ = sc.Close()
		}
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("start sftp: %w", err)
	}
	cn.sftp = sc
	return sc, nil
}

func (cn *conn) dropSFTP(sc *sftp.Client) {
	cn.sftpMu.Lock()
	if cn.sftp == sc {
		cn.sftp = nil
	}
	cn.sftpMu.Unlock()
	_ = sc.Close()
}

// tempBeside returns p's directory and a new temp file name beside p.
func tempBeside(p string) (dir, tmp string, err error) {
	dir, base := path.Dir(p), path.Base(p)
	if base == "." || base == "/" || base == ".." {
		return "", "", fmt.Errorf("invalid destination path %q", p)
	}
	return dir, path.Join(dir, "."+base+".drover-tmp-"+randomSuffix()), nil
}

// putSession uploads through the shell session: the bytes ride the
// session's stdin into a temp file (written 0600, fsynced), then, after a
// fence check, chmod and an atomic rename. Two round trips, no SFTP channel
// (which would start another login shell).
func (cn *conn) putSession(ctx context.Context, s *shellSession, p string, r io.Reader, size int64, mode fs.FileMode) error {
	dir, tmp, err := tempBeside(p)
	if err != nil {
		return err
	}
	out := tail.New(2048)
	// A short stream (the session or the source broke) leaves no temp file:
	// nobody may be left to remove it.
	write := fmt.Sprintf("umask 077 && mkdir -p %[1]s && dd of=%[2]s bs=65536 conv=fsync status=none && [ \"$(wc -c <%[2]s)\" -eq %[3]d ] || { rm -f %[2]s; exit 1; }",
		shell.Quote(dir), shell.Quote(tmp), size)
	err = s.upload(ctx, write, r, size, out)
	if err == nil {
		// The upload took a while; the rename is what changes the host.
		_, err = fence.Check(ctx)
		if err == nil {
			perm := mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
			err = s.run(ctx, fmt.Sprintf("chmod %o %s && mv -f %s %s", perm, shell.Quote(tmp), shell.Quote(tmp), shell.Quote(p)), out)
		}
	}
	if err == nil {
		return nil
	}
	if msg := strings.TrimSpace(out.String()); msg != "" {
		err = fmt.Errorf("%w: %s", err, msg)
	}
	if !s.isDead() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = s.run(rctx, "rm -f "+shell.Quote(tmp), nil)
		cancel()
	}
	return err
}

func (cn *conn) put(ctx context.Context, p string, r io.Reader, mode fs.FileMode) error {
	dir, tmp, err := tempBeside(p)
	if err != nil {
		return err
	}
	var created bool
	err = cn.withSFTP(ctx, func(sc *sftp.Client) error {
		if err := sc.MkdirAll(dir); err != nil {
			return fmt.Errorf("create directory %s: %w", dir, err)
		}
		f, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return fmt.Errorf("create %s: %w", tmp, err)
		}
		created = true
		if err := writeFile(sc, f, r, mode); err != nil {
			_ = f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", tmp, err)
		}
		// The upload took a while; the rename is what changes the host.
		if _, err := fence.Check(ctx); err != nil {
			return err
		}
		return rename(sc, tmp, p)
	})
	if err != nil && created {
		cn.removeTemp(ctx, tmp)
	}
	return err
}

func writeFile(sc *sftp.Client, f *sftp.File, r io.Reader, mode fs.FileMode) error {
	// chmod before writing: the content is never readable more widely than
	// mode allows.
	if err := f.Chmod(mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)); err != nil {
		return fmt.Errorf("chmod %s: %w", f.Name(), err)
	}
	if _, err := f.ReadFromWithConcurrency(r, 0); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if v, ok := sc.HasExtension("fsync@openssh.com"); ok && v == "1" {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", f.Name(), err)
		}
	}
	return nil
}

// rename moves tmp over dst: atomically with posix-rename@openssh.com; on
// servers without it (plain SFTP v3 rename refuses to replace), by removing
// dst first, which leaves a short window without dst.
func rename(sc *sftp.Client, tmp, dst string) error {
	if _, ok := sc.HasExtension("posix-rename@openssh.com"); ok {
		if err := sc.PosixRename(tmp, dst); err != nil {
			return fmt.Errorf("rename %s to %s: %w", tmp, dst, err)
		}
		return nil
	}
	if err := sc.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	if err := sc.Rename(tmp, dst); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, dst, err)
	}
	return nil
}

// removeTemp deletes a temp file left by a failed Put, best effort, even
// when ctx has ended (bounded by its own short timeout).
func (cn *conn) removeTemp(ctx context.Context, tmp string) {
	if cn.isDead() {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = cn.withSFTP(rctx, func(sc *sftp.Client) error { return sc.Remove(tmp) })
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// countingReader stops at ctx's end and counts what it handed out, so that
// Put knows whether a retry needs to rewind the source.
type countingReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (cr *countingReader) Read(b []byte) (int, error) {
	if err := cr.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := cr.r.Read(b)
	cr.n += int64(n)
	return n, err
}

// syncWriter serialises writes: stdout and stderr are copied
// concurrently. Write is stdout; with errw set, it is a splitWriter whose
// Stderr() writes there.
type syncWriter struct {
	mu   sync.Mutex
	w    io.Writer
	errw io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// splitWriter is a syncWriter whose caller keeps stderr apart.
type splitWriter struct{ *syncWriter }

// Stderr is the writer of the command's stderr.
func (s splitWriter) Stderr() io.Writer { return syncStderr{s.syncWriter} }

type syncStderr struct{ s *syncWriter }

func (e syncStderr) Write(b []byte) (int, error) {
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	return e.s.errw.Write(b)
}

// stderrOf is where a command's stderr goes when its output goes to w.
func stderrOf(w io.Writer) io.Writer {
	if s, ok := w.(interface{ Stderr() io.Writer }); ok {
		return s.Stderr()
	}
	return w
}
