//go:build unix

package ssh

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testwait"
)

// TestCommandsShareOneShellSession: a host's commands start the remote
// shell once, and each still behaves as if it ran alone.
func TestCommandsShareOneShellSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d, c := f.dialed(t)
	run := func(cmd string) (string, error) {
		var out bytes.Buffer
		err := c.Run(t.Context(), cmd, &out)
		return out.String(), err
	}
	// A marker-like line, output without a final newline, a command that
	// reads stdin (it gets EOF, not the next frame), shell state that must
	// not leak into the next command, and a large output.
	big := strings.Repeat("0123456789abcdef", 4<<10)
	tests := []struct {
		cmd, want string
		code      int
	}{
		{cmd: "echo one; echo two >&2", want: "one\ntwo\n"},
		{cmd: `printf 'no newline'`, want: "no newline"},
		{cmd: `printf '\nS fake 0\n'; printf 'E\n'`, want: "\nS fake 0\nE\n"},
		{cmd: "cat; echo read-eof", want: "read-eof\n"},
		{cmd: "{ cat <&3; } 2>/dev/null; echo fd3-closed", want: "fd3-closed\n"},
		{cmd: "x=leaked; cd /; exit 4", code: 4},
		{cmd: `echo "x=$x"; pwd | grep -qx / && echo cd-leaked; true`, want: "x=\n"},
		{cmd: "printf %s " + big, want: big},
		{cmd: "printf 'a\\n\\nb'\n\n# a comment line, then an empty one\n\necho", want: "a\n\nb\n"},
	}
	for _, tt := range tests {
		out, err := run(tt.cmd)
		var exit *ExitError
		switch {
		case tt.code != 0 && (!errors.As(err, &exit) || exit.Code != tt.code):
			t.Errorf("%.40q: err = %v, want exit %d", tt.cmd, err, tt.code)
		case tt.code == 0 && err != nil:
			t.Errorf("%.40q: %v", tt.cmd, err)
		case out != tt.want:
			t.Errorf("%.40q: output %.80q, want %.80q", tt.cmd, out, tt.want)
		}
	}
	if n := f.srv.execs.Load(); n != 1 {
		t.Errorf("%d remote shell starts for %d commands, want 1", n, len(tests))
	}
	st := d.Stats()
	if st.Channels != 1 || st.Requests != 1 || st.Commands != len(tests) {
		t.Errorf("stats = %+v", st)
	}
}

// TestTimeoutKeepsSessionUsable: a command that times out is killed with
// its process group, and the next command runs in the same session.
func TestTimeoutKeepsSessionUsable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.srv.ignoreSignals.Store(true)
	c := f.client(t)
	if err := c.Run(t.Context(), "true", nil); err != nil {
		t.Fatal(err)
	}
	cancelKills(t, c, f.dir)
	runPastDeadline(t, c, 200*time.Millisecond)
	runEach(t, c, 1, "echo still-here", "still-here\n")
	if n := f.srv.execs.Load(); n != 1 {
		t.Errorf("%d remote shell starts, want 1 (the session survives a kill)", n)
	}
}

// TestSessionLostIsRetriedOnce: the remote shell dying mid-command is
// retried on a new connection, like a dropped connection.
func TestSessionLostIsRetriedOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client(t)
	// $PPID of the command is the session's loop shell.
	killParentOnce(t, c, f.dir+"/killed-once", "1", 2)
}

// TestNoSetsidFallsBackToOneSessionPerCommand: a host without setsid runs
// each command in its own SSH session, as before.
func TestNoSetsidFallsBackToOneSessionPerCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.srv.emptyPath.Store(true)
	c := f.client(t)
	runEach(t, c, 2, "echo alone", "alone\n")
	if n := f.srv.execs.Load(); n != 3 {
		t.Errorf("%d exec requests, want 3 (the refused session, then one per command)", n)
	}
}

func TestPerCommandSessionsConfig(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client(t, func(c *Config) { c.PerCommandSessions = true })
	runEach(t, c, 3, "true", "")
	if n := f.srv.execs.Load(); n != 3 {
		t.Errorf("%d exec requests, want 3", n)
	}
}

func TestPartialSuffix(t *testing.T) {
	t.Parallel()
	m := []byte("\nSabc ")
	tests := []struct {
		buf  string
		want int
	}{
		{"", 0}, {"x", 0}, {"x\n", 1}, {"x\nS", 2}, {"x\nSab", 4}, {"x\nSabc", 5}, {"\nSx", 0}, {"\n", 1},
	}
	for _, tt := range tests {
		if got := partialSuffix([]byte(tt.buf), m); got != tt.want {
			t.Errorf("partialSuffix(%q) = %d, want %d", tt.buf, got, tt.want)
		}
	}
}

// TestPutThroughSession: a seekable source rides the shell session (no
// SFTP channel); a failed upload leaves no temp file and the session in
// step for the next command.
func TestPutThroughSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d, c := f.dialed(t)
	dir := filepath.Join(f.dir, "srv", "app")
	dst := filepath.Join(dir, "releases", "app.tar.gz")
	big := strings.Repeat("0123456789abcdef", 256<<10) // 4 MiB
	putTwice(t, c, dst, big, "v2")

	// A file where a directory should be: mkdir fails, the data is
	// discarded, and the session reads the next frame.
	blocker := filepath.Join(dir, "blocker")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.Put(t.Context(), filepath.Join(blocker, "x"), strings.NewReader(big), 0o600)
	var exit *ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("put under a file: err = %v, want an exit error", err)
	}
	runEach(t, c, 1, "echo in-step", "in-step\n")
	if names := listDir(t, filepath.Dir(dst)); len(names) != 1 {
		t.Errorf("releases/ holds %v, want only app.tar.gz", names)
	}
	if st := d.Stats(); st.Channels != 1 || f.srv.execs.Load() != 1 {
		t.Errorf("stats = %+v, %d execs: want one session and no SFTP", st, f.srv.execs.Load())
	}
}

// failingReader fails after n bytes; it seeks, so Put takes the session.
type failingReader struct {
	*strings.Reader
	n int
}

func (r *failingReader) Read(b []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("disk read error")
	}
	if len(b) > r.n {
		b = b[:r.n]
	}
	n, err := r.Reader.Read(b)
	r.n -= n
	return n, err
}

// TestPutSourceFailsMidway: the session cannot be resynchronised, so it is
// closed (and replaced for the next call); the error is the source's, not
// retried, and no temp file is left.
func TestPutSourceFailsMidway(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.client(t)
	dst := filepath.Join(f.dir, "out", "file")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	err := c.Put(t.Context(), dst, &failingReader{strings.NewReader(strings.Repeat("x", 1<<20)), 100 << 10}, 0o600)
	if err == nil || !strings.Contains(err.Error(), "disk read error") {
		t.Fatalf("err = %v", err)
	}
	if err := c.Run(t.Context(), "true", nil); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the temp file removed", func() bool { return len(listDir(t, filepath.Dir(dst))) == 0 })
}

// streams is an output whose caller keeps stderr apart.
type streams struct{ out, err bytes.Buffer }

func (s *streams) Write(p []byte) (int, error) { return s.out.Write(p) }
func (s *streams) Stderr() io.Writer           { return &s.err }

// A caller that offers Stderr() gets the two streams apart, through the
// shared session and through a session per command alike, and each
// command's stderr ends with it (none bleeds into the next command).
func TestStderrKeptApart(t *testing.T) {
	t.Parallel()
	for _, perCommand := range []bool{false, true} {
		t.Run(fmt.Sprintf("per-command=%v", perCommand), func(t *testing.T) {
			f := newFixture(t)
			c := f.client(t, func(c *Config) { c.PerCommandSessions = perCommand })
			for i, tc := range []struct {
				cmd, out, err string
				code          int
			}{
				{cmd: "echo out; echo err >&2; printf 'no-nl-err' >&2; exit 3", out: "out\n", err: "err\nno-nl-err", code: 3},
				{cmd: "echo again >&2; printf '\\nS fake\\n' >&2", err: "again\n\nS fake\n"},
				{cmd: "echo only-out", out: "only-out\n"},
			} {
				var s streams
				err := c.Run(t.Context(), tc.cmd, &s)
				var exit *ExitError
				if (tc.code == 0 && err != nil) || (tc.code != 0 && (!errors.As(err, &exit) || exit.Code != tc.code)) {
					t.Errorf("command %d: %v, want exit %d", i, err, tc.code)
				}
				if s.out.String() != tc.out || s.err.String() != tc.err {
					t.Errorf("command %d: stdout %q stderr %q, want %q and %q", i, s.out.String(), s.err.String(), tc.out, tc.err)
				}
			}
		})
	}
}
