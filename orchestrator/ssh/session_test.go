//go:build unix

package ssh

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// TestCommandsShareOneShellSession: a host's commands start the remote
// shell once, and each still behaves as if it ran alone.
func TestCommandsShareOneShellSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.dialer(t)
	c, err := d.Dial(t.Context(), f.srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
	pid, err := runUntilStarted(t, c, f.dir)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	waitGone(t, pid, 10*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := c.Run(ctx, "sleep 30", io.Discard); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	var out bytes.Buffer
	if err := c.Run(t.Context(), "echo still-here", &out); err != nil || out.String() != "still-here\n" {
		t.Fatalf("after the kills: %q, %v", out.String(), err)
	}
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
	marker := f.dir + "/killed-once"
	var out bytes.Buffer
	// $PPID of the command is the session's loop shell.
	cmd := "if [ ! -e " + marker + " ]; then touch " + marker + "; kill -KILL $PPID; sleep 1; fi; echo survived"
	if err := c.Run(t.Context(), cmd, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "survived\n") {
		t.Errorf("output = %q", out.String())
	}
	if n := c.Handshakes(); n != 2 {
		t.Errorf("handshakes = %d, want 2", n)
	}
}

// TestNoSetsidFallsBackToOneSessionPerCommand: a host without setsid runs
// each command in its own SSH session, as before.
func TestNoSetsidFallsBackToOneSessionPerCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.srv.emptyPath.Store(true)
	c := f.client(t)
	for range 2 {
		var out bytes.Buffer
		if err := c.Run(t.Context(), "echo alone", &out); err != nil || out.String() != "alone\n" {
			t.Fatalf("%q, %v", out.String(), err)
		}
	}
	if n := f.srv.execs.Load(); n != 3 {
		t.Errorf("%d exec requests, want 3 (the refused session, then one per command)", n)
	}
}

func TestPerCommandSessionsConfig(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c, err := f.dialer(t, func(c *Config) { c.PerCommandSessions = true }).Dial(t.Context(), f.srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		if err := c.Run(t.Context(), "true", nil); err != nil {
			t.Fatal(err)
		}
	}
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
