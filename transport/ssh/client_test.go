//go:build unix

package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/shell"
	"github.com/drover-dev/drover/internal/testwait"
)

func TestRunCapturesOutput(t *testing.T) {
	t.Parallel()
	c := newFixture(t).client(t)
	var out bytes.Buffer
	if err := c.Run(t.Context(), "echo to-stdout; echo to-stderr >&2", &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"to-stdout\n", "to-stderr\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
	if err := c.Run(t.Context(), "true", nil); err != nil {
		t.Fatalf("nil writer: %v", err)
	}
}

func TestRunExitCode(t *testing.T) {
	t.Parallel()
	c := newFixture(t).client(t)
	var out bytes.Buffer
	err := c.Run(t.Context(), "echo failing; exit 3", &out)
	var exit *ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("err = %v, want *ExitError", err)
	}
	if exit.Code != 3 || exit.Cmd != "echo failing; exit 3" || exit.Signal != "" {
		t.Errorf("ExitError = %+v", exit)
	}
	if !strings.Contains(err.Error(), "command exited with status 3") {
		t.Errorf("message: %v", err)
	}
	if out.String() != "failing\n" {
		t.Errorf("output = %q", out.String())
	}
	if n := c.Handshakes(); n != 1 {
		t.Errorf("a failed command caused a redial: %d handshakes", n)
	}
}

// waitGone waits until pid no longer names a live process.
func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	testwait.Within(t, within, fmt.Sprintf("process %d to exit after cancellation", pid), func() bool { return !alive(pid) })
}

// alive reports whether pid names a process that has not exited (a zombie,
// exited but not yet reaped, counts as exited).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist) && !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) == 0 || f[0] != "Z"
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the command did not record its pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// runUntilStarted runs a command that starts `sleep 30` in the background
// (a grandchild of the shell: killing the shell alone is not enough) and
// cancels the call once the sleep's pid is on disk. It returns the sleep's pid
// and Run's error.
func runUntilStarted(t *testing.T, c *Client, dir string) (int, error) {
	t.Helper()
	pidFile := filepath.Join(dir, "sleep.pid")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if b, err := os.ReadFile(pidFile); err == nil && bytes.HasSuffix(b, []byte("\n")) {
				cancel()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	err := c.Run(ctx, fmt.Sprintf("sleep 30 & echo $! > %s.tmp; mv %[1]s.tmp %[1]s; wait", pidFile), io.Discard)
	return readPID(t, pidFile), err
}

func TestRunCancelKillsCommand(t *testing.T) {
	t.Parallel()
	for _, signals := range []bool{true, false} {
		t.Run(fmt.Sprintf("server honours signals=%v", signals), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.srv.ignoreSignals.Store(!signals)
			c := f.client(t)
			cancelKills(t, c, f.dir)

			// The connection is still good for the next call.
			runTrue(t, c, 1)
		})
	}
}

func TestRunDeadline(t *testing.T) {
	t.Parallel()
	c := newFixture(t).client(t)
	if d := runPastDeadline(t, c, 300*time.Millisecond); d > 5*time.Second {
		t.Errorf("Run returned after %s", d)
	}
}

func TestRunLeavesBackgroundProcessesOnSuccess(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client(t)
	pidFile := filepath.Join(f.dir, "pid")
	// Like a restart script: start something in the background and return.
	if err := c.Run(t.Context(), fmt.Sprintf("sleep 5 >/dev/null 2>&1 & echo $! > %s", pidFile), nil); err != nil {
		t.Fatal(err)
	}
	pid := readPID(t, pidFile)
	// The next command runs once the session is done with the first one
	// (and with whatever it does about its process group).
	if err := c.Run(t.Context(), "true", nil); err != nil {
		t.Fatal(err)
	}
	if !alive(pid) {
		t.Fatalf("background process %d died with the command", pid)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func TestWrapCommandQuoting(t *testing.T) {
	t.Parallel()
	c := newFixture(t).client(t)
	var out bytes.Buffer
	cmd := `printf '%s|' "it's" 'a "test"' $HOME/x; echo`
	if err := c.Run(t.Context(), cmd, &out); err != nil {
		t.Fatal(err)
	}
	want := `it's|a "test"|` + os.Getenv("HOME") + "/x|\n"
	if out.String() != want {
		t.Errorf("output = %q, want %q", out.String(), want)
	}
}

func TestRunAlreadyCancelled(t *testing.T) {
	t.Parallel()
	c := newFixture(t).client(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Run(ctx, "true", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// listDir returns the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func checkFile(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content {
		t.Errorf("%s = %q, want %q", path, b, content)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != mode {
		t.Errorf("%s mode = %v, want %v", path, st.Mode().Perm(), mode)
	}
}

// putTwice uploads first then second to dst with modes 0640 and 0600, and
// checks each: the second replaces the first, and its mode applies.
func putTwice(t *testing.T, c *Client, dst, first, second string) {
	t.Helper()
	for _, p := range []struct {
		data string
		mode fs.FileMode
	}{{first, 0o640}, {second, 0o600}} {
		if err := c.Put(t.Context(), dst, strings.NewReader(p.data), p.mode); err != nil {
			t.Fatal(err)
		}
		checkFile(t, dst, p.data, p.mode)
	}
}

// cancelKills cancels a command that left a grandchild running and waits
// until that grandchild is killed.
func cancelKills(t *testing.T, c *Client, dir string) {
	t.Helper()
	pid, err := runUntilStarted(t, c, dir)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	waitGone(t, pid, 10*time.Second)
}

// runPastDeadline runs a long command under a deadline of d and checks that
// the deadline ends it; it returns how long Run took.
func runPastDeadline(t *testing.T, c *Client, d time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	start := time.Now()
	if err := c.Run(ctx, "sleep 30", io.Discard); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	return time.Since(start)
}

// killParentOnce runs a command whose first attempt kills its parent (the
// remote shell or sshd's session process) with SIGKILL, and checks that
// the retry ran it to the end on connection number handshakes. The killed
// attempt then sleeps for hold, long enough for the kill to land first.
func killParentOnce(t *testing.T, c *Client, marker string, hold string, handshakes int) {
	t.Helper()
	var out bytes.Buffer
	cmd := fmt.Sprintf("if [ ! -e %[1]s ]; then touch %[1]s; kill -KILL $PPID; sleep %[2]s; fi; echo survived", shell.Quote(marker), hold)
	if err := c.Run(t.Context(), cmd, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "survived\n") {
		t.Errorf("output = %q", out.String())
	}
	if n := c.Handshakes(); n != handshakes {
		t.Errorf("handshakes = %d, want %d", n, handshakes)
	}
}

// runTrue runs true and checks that the client has made handshakes
// connections so far.
func runTrue(t *testing.T, c *Client, handshakes int) {
	t.Helper()
	if err := c.Run(t.Context(), "true", nil); err != nil {
		t.Fatal(err)
	}
	if n := c.Handshakes(); n != handshakes {
		t.Errorf("handshakes = %d, want %d", n, handshakes)
	}
}

// runEach runs cmd n times and checks its output each time.
func runEach(t *testing.T, c *Client, n int, cmd, want string) {
	t.Helper()
	for range n {
		var out bytes.Buffer
		if err := c.Run(t.Context(), cmd, &out); err != nil || out.String() != want {
			t.Fatalf("%s: %q, %v; want %q", cmd, out.String(), err, want)
		}
	}
}

func TestPutAtomic(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client(t)
	dir := filepath.Join(f.dir, "srv", "app", "releases")
	dst := filepath.Join(dir, "app.tar.gz")

	// 1 MiB: several concurrent writes; then replace it: rename over the
	// existing file, new mode applies.
	putTwice(t, c, dst, strings.Repeat("0123456789abcdef", 64<<10), "v2")

	// A source that fails midway leaves the old file and no temp file.
	err := c.Put(t.Context(), dst, io.MultiReader(strings.NewReader("partial"), errReader{}), 0o644)
	if err == nil || !strings.Contains(err.Error(), "source exploded") {
		t.Fatalf("err = %v", err)
	}
	checkFile(t, dst, "v2", 0o600)
	if names := listDir(t, dir); len(names) != 1 || names[0] != "app.tar.gz" {
		t.Errorf("directory holds %v, want only app.tar.gz", names)
	}
	if n := c.Handshakes(); n != 1 {
		t.Errorf("handshakes = %d, want 1 (a source error is not a transport error)", n)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("source exploded") }

func TestPutCancelled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client(t)
	dst := filepath.Join(f.dir, "out", "file")
	ctx, cancel := context.WithCancel(t.Context())
	r := &cancellingReader{cancel: cancel}
	err := c.Put(ctx, dst, r, 0o644)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	if names := listDir(t, filepath.Dir(dst)); len(names) != 0 {
		t.Errorf("left behind %v", names)
	}
	// The next Put works (a fresh SFTP session on the same connection).
	if err := c.Put(t.Context(), dst, strings.NewReader("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, "ok", 0o644)
	if n := c.Handshakes(); n != 1 {
		t.Errorf("handshakes = %d, want 1", n)
	}
}

// cancellingReader yields some data, then cancels its context and blocks
// briefly, as a slow source during a cancelled deploy would.
type cancellingReader struct {
	cancel func()
	calls  int
}

func (r *cancellingReader) Read(b []byte) (int, error) {
	r.calls++
	if r.calls == 1 {
		return copy(b, "some data"), nil
	}
	r.cancel()
	return copy(b, "more"), nil
}

func TestOneHandshakePerHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d, c := f.dialed(t)
	for i := range 5 {
		if err := c.Run(t.Context(), "true", nil); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(f.dir, "files", strconv.Itoa(i))
		if err := c.Put(t.Context(), p, strings.NewReader("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if c.Handshakes() != 1 || d.Handshakes() != 1 || f.srv.handshakes.Load() != 1 {
		t.Errorf("handshakes: client %d, dialer %d, server %d; want 1 each",
			c.Handshakes(), d.Handshakes(), f.srv.handshakes.Load())
	}
}

func TestRedialAfterServerDropsConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client(t)
	dst := filepath.Join(f.dir, "f")
	if err := c.Put(t.Context(), dst, strings.NewReader("one"), 0o644); err != nil {
		t.Fatal(err)
	}

	f.srv.dropAll()
	var out bytes.Buffer
	if err := c.Run(t.Context(), "echo again", &out); err != nil {
		t.Fatalf("Run after drop: %v", err)
	}
	if out.String() != "again\n" {
		t.Errorf("output = %q", out.String())
	}
	if n := c.Handshakes(); n != 2 {
		t.Errorf("handshakes = %d, want 2", n)
	}

	f.srv.dropAll() // the cached SFTP session dies with it
	if err := c.Put(t.Context(), dst, strings.NewReader("two"), 0o644); err != nil {
		t.Fatalf("Put after drop: %v", err)
	}
	checkFile(t, dst, "two", 0o644)
	if n := c.Handshakes(); n != 3 {
		t.Errorf("handshakes = %d, want 3", n)
	}
}

func TestRetryFailureReportsBothErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client(t)
	f.srv.close() // listener gone too: the redial is refused
	err := c.Run(t.Context(), "true", nil)
	if err == nil {
		t.Fatal("Run succeeded against a stopped server")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "connection lost; reconnecting failed") {
		t.Errorf("err = %v", err)
	}
}

func TestRewinder(t *testing.T) {
	t.Parallel()
	read := func(src *countingReader) { _, _ = src.Read(make([]byte, 3)) }

	seekable := &countingReader{ctx: t.Context(), r: strings.NewReader("abcdef")}
	rw := rewinder(seekable)
	read(seekable)
	if err := rw(); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(seekable); string(b) != "abcdef" {
		t.Errorf("after rewind read %q", b)
	}

	stream := &countingReader{ctx: t.Context(), r: io.MultiReader(strings.NewReader("abcdef"))}
	rw = rewinder(stream)
	if err := rw(); err != nil {
		t.Errorf("nothing read yet, rewind must succeed: %v", err)
	}
	read(stream)
	if err := rw(); err == nil {
		t.Error("a partly read stream cannot be rewound")
	}
}

func TestPutNotRetriedWhenSourceCannotRewind(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client(t)
	src := &countingReader{ctx: t.Context(), r: io.MultiReader(strings.NewReader("abcdef"))}
	calls := 0
	err := c.do(t.Context(), rewinder(src), func(*conn) error {
		calls++
		_, _ = src.Read(make([]byte, 3))
		return io.ErrUnexpectedEOF
	})
	if calls != 1 || !strings.Contains(err.Error(), "not retried") {
		t.Errorf("calls = %d, err = %v", calls, err)
	}
}

func TestKeepAliveClosesUnresponsiveConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.srv.ignoreKeepalive.Store(true)
	c := f.client(t, func(c *Config) { c.KeepAlive = 30 * time.Millisecond })
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	select {
	case <-cn.dead:
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed after missed keepalives")
	}
	f.srv.ignoreKeepalive.Store(false)
	runTrue(t, c, 2)
}

func TestKeepAliveKeepsHealthyConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client(t, func(c *Config) { c.KeepAlive = 100 * time.Millisecond })
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	select {
	case <-cn.dead:
		t.Fatal("a healthy connection was closed")
	case <-time.After(time.Second): // ~10 keepalive rounds
	}
}

func TestClosedClient(t *testing.T) {
	t.Parallel()
	c := newFixture(t).client(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := c.Run(t.Context(), "true", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}
