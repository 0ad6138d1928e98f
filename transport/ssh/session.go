package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// A shell session runs every command of a host through one long-lived
// remote login shell, so that the shell's start (and its rc file: a bash
// login shell sources ~/.bashrc for every command sshd runs) is paid once
// per connection instead of once per command. The remote side is a small
// POSIX sh loop (sessionScript) reading framed commands from the channel's
// stdin:
//
//	B<marker>\n <command lines> \nE<marker>\n
//
// or, for an upload, U<marker> <size> instead of B<marker>, followed by
// exactly size bytes that become the command's stdin (the rest of what the
// command leaves unread is discarded, so the stream stays in step).
//
// It runs each in its own process group and session (setsid), with stdin
// /dev/null, in the login shell ($SHELL, which sshd sets), and after it
// ends prints
//
//	\nS<marker>\n               on stderr, then
//	\nS<marker> <exit status>\n on stdout.
//
// A command framed "B<marker> 2" has its stderr on the channel's stderr,
// so the two streams stay apart (otherwise stderr joins stdout, in the
// order written); the stderr marker comes first, so once the status is read the
// command's stderr is in the client's buffer too (the SSH channel carries
// both in order). The loop says it is ready on both streams, so that what
// an rc file prints before is skipped on each. The marker is random per session, so a command's output cannot
// end a frame by accident. While a command runs, a watcher in the loop reads
// the channel's stdin: any line (the client sends "K" when the call's ctx
// ends) or EOF (the connection or session went away) makes it kill the
// command's process group with SIGKILL. The watcher is stopped before the
// status is printed, so the session reads the next frame itself; a "K" that
// raced a finishing command is skipped as a line outside any frame.
//
// Each command still gets what a per-command session gave it: its own
// timeout (ctx) with a process-group kill, its output, its exit status, a
// fresh process (no state carries over from one command to the next), and
// the caller's fencing and DROVER_TERM (both added to the command text by
// the engine before Run). Each command gets the login shell's SHLVL, as a
// foreground child would (bash lowers it in the environment of a
// background job), so that bash, which sources ~/.bashrc for a command it
// thinks sshd started (SSH_CLIENT set, SHLVL below 2), sees that it is
// nested and does not pay the rc file again. (zsh reads ~/.zshenv for every
// command regardless.) A login shell that defines the function
// drover_session_hook (a ForceCommand wrapper that evals this script, like
// the lab's host audit) has it called with each command before it runs.
const sessionScript = `# drover shell session
m=%s
__drover_sh=${SHELL:-/bin/sh}
[ -x "$__drover_sh" ] || __drover_sh=/bin/sh
command -v setsid >/dev/null 2>&1 || { printf 'N%%s\n' "$m"; exit 0; }
__drover_lvl=${SHLVL:-1}
exec 3<&0 </dev/null
printf 'R%%s\n' "$m" >&2
printf 'R%%s\n' "$m"
while IFS= read -r __drover_l <&3; do
  __drover_j=1
  case $__drover_l in
  "B$m") __drover_n= ;;
  "B$m 2") __drover_n= __drover_j= ;;
  "U$m "*) __drover_n=${__drover_l#"U$m "} ;;
  *) continue ;;
  esac
  __drover_c=
  while IFS= read -r __drover_l <&3 && [ "$__drover_l" != "E$m" ]; do
    __drover_c="$__drover_c$__drover_l
"
  done
  if command -v drover_session_hook >/dev/null 2>&1; then drover_session_hook "$__drover_c" >/dev/null 2>&1 3<&-; fi
  if [ -n "$__drover_n" ]; then
    head -c "$__drover_n" <&3 | { env "SHLVL=$__drover_lvl" "$__drover_sh" -c "$__drover_c" 3<&- 2>&1; __drover_s=$?; cat >/dev/null; exit $__drover_s; }
    __drover_s=$?
  else
    if [ -n "$__drover_j" ]; then
      setsid env "SHLVL=$__drover_lvl" "$__drover_sh" -c "$__drover_c" 3<&- 2>&1 &
    else
      setsid env "SHLVL=$__drover_lvl" "$__drover_sh" -c "$__drover_c" 3<&- &
    fi
    __drover_p=$!
    (IFS= read -r __drover_k <&3; kill -KILL -"$__drover_p") >/dev/null 2>&1 &
    __drover_w=$!
    wait "$__drover_p"
    __drover_s=$?
    kill "$__drover_w" 2>/dev/null
    wait "$__drover_w" 2>/dev/null
  fi
  printf '\nS%%s\n' "$m" >&2
  printf '\nS%%s %%d\n' "$m" "$__drover_s"
done
`

// errNoSession means the host cannot run a shell session (no setsid, or a
// login shell that does not run the loop): commands use one SSH session
// each, as before.
var errNoSession = errors.New("no shell session on this host")

// shellSession is one running sessionScript.
type shellSession struct {
	sess   *ssh.Session
	stdin  io.WriteCloser
	marker string
	frames chan frameEnd // one per finished command; closed when stdout ends
	// errEnded counts the commands whose stderr has ended; errTick is
	// closed (and replaced) at each, and errDead once stderr ends. The
	// reader never waits on anyone, so stderr cannot stall the channel.
	errEnded uint64
	errTick  chan struct{}
	errDead  chan struct{}
	errSent  uint64 // commands sent (under busy)

	mu      sync.Mutex
	sink    io.Writer // where the running command's output goes; nil: discard
	errSink io.Writer // and its stderr

	grace time.Duration // how long a killed command may take to report its end
	busy  chan struct{} // one command at a time
	ready chan struct{} // closed once the loop said it runs
	dead  chan struct{} // closed once stdout ended
	// startErr is why the loop never ran (errNoSession), set before dead
	// and frames are closed.
	startErr error
}

// frameEnd is a command's exit status as the loop printed it.
type frameEnd struct{ status int }

// startSession opens the channel and starts the loop. It does not wait for
// the loop's "ready" line: the first command is sent at once and waits in
// the channel while the login shell starts, which saves a round trip per
// host. A host that answers "no setsid", or whose shell ends before saying
// ready, fails that command with errNoSession without having run it.
func (cn *conn) startSession(ctx context.Context) (*shellSession, error) {
	stop := cn.closeOnDone(ctx)
	sess, err := cn.ssh.NewSession()
	if !stop() {
		if sess != nil {
			_ = sess.Close()
		}
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	cn.channels.Add(1)
	s := &shellSession{sess: sess, marker: randomSuffix() + randomSuffix(), frames: make(chan frameEnd, 1), errTick: make(chan struct{}), errDead: make(chan struct{}), grace: cn.shellGrace,
		busy: make(chan struct{}, 1), ready: make(chan struct{}), dead: make(chan struct{})}
	if s.stdin, err = sess.StdinPipe(); err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("open session: %w", err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("open session: %w", err)
	}
	stderr, err := sess.StderrPipe()
	if err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("open session: %w", err)
	}
	stop = cn.closeOnDone(ctx)
	cn.requests.Add(1)
	err = sess.Start(fmt.Sprintf(sessionScript, s.marker))
	if !stop() {
		_ = sess.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("start shell session: %w", err)
	}
	go s.read(stdout)
	go s.readErr(stderr)
	return s, nil
}

// waitReady waits until the loop runs: before an upload, whose bytes
// cannot be taken back if the host turns out to have no session.
func (s *shellSession) waitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-s.dead:
		return s.endErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// endErr is why a session that ended cannot run a command: it never ran
// the loop (errNoSession), or it was lost.
func (s *shellSession) endErr() error {
	if s.startErr != nil {
		return s.startErr
	}
	return errSessionLost
}

// read parses the loop's stdout: first the ready line, then each command's
// output (to the current sink) and end of frame.
func (s *shellSession) read(stdout io.Reader) {
	defer close(s.dead)
	defer close(s.frames)
	m := &marked{r: stdout, chunk: make([]byte, 8<<10)} // per host: small, there may be hundreds
	switch m.skipTo([]byte("R"+s.marker+"\n"), []byte("N"+s.marker+"\n")) {
	case 0:
	case 1:
		s.startErr = fmt.Errorf("%w: setsid is missing", errNoSession)
		return
	default:
		s.startErr = fmt.Errorf("%w: the login shell ended before the session started", errNoSession)
		return
	}
	close(s.ready)

	// Each frame ends with "\nS<marker> <status>\n".
	end := []byte("\nS" + s.marker + " ")
	for m.until(end, s.write) {
		status, ok := m.line()
		if !ok {
			return
		}
		n, err := strconv.Atoi(status)
		if err != nil {
			n = -1
		}
		s.frames <- frameEnd{status: n}
	}
}

// marked reads one of the session loop's streams: free text (a login
// shell's noise, commands' output) between the loop's marker lines.
type marked struct {
	r          io.Reader
	buf, chunk []byte
}

// more reads once more; false when the stream has ended.
func (m *marked) more() bool {
	n, err := m.r.Read(m.chunk)
	m.buf = append(m.buf, m.chunk[:n]...)
	return n > 0 || err == nil
}

// skipTo drops everything up to and including the first of markers to
// appear and says which (its index), or -1 when the stream ended first.
// What comes before is an rc file's output: only its end is kept.
func (m *marked) skipTo(markers ...[]byte) int {
	for {
		for k, mk := range markers {
			if i := bytes.Index(m.buf, mk); i >= 0 {
				m.buf = m.buf[i+len(mk):]
				return k
			}
		}
		if !m.more() {
			return -1
		}
		if len(m.buf) > 64<<10 { // an rc file printing that much: keep its end
			m.buf = append(m.buf[:0], m.buf[len(m.buf)-1024:]...)
		}
	}
}

// until passes on everything before marker to pass, as it arrives (but
// never a part that may be the marker's start), and drops the marker; false
// when the stream ended first.
func (m *marked) until(marker []byte, pass func([]byte)) bool {
	for {
		if i := bytes.Index(m.buf, marker); i >= 0 {
			pass(m.buf[:i])
			m.buf = append(m.buf[:0], m.buf[i+len(marker):]...)
			return true
		}
		keep := partialSuffix(m.buf, marker)
		pass(m.buf[:len(m.buf)-keep])
		m.buf = append(m.buf[:0], m.buf[len(m.buf)-keep:]...)
		if !m.more() {
			return false
		}
	}
}

// line returns the rest of the current line, without its newline; false
// when the stream ended first.
func (m *marked) line() (string, bool) {
	for {
		if i := bytes.IndexByte(m.buf, '\n'); i >= 0 {
			l := string(m.buf[:i])
			m.buf = append(m.buf[:0], m.buf[i+1:]...)
			return l, true
		}
		if !m.more() {
			return "", false
		}
	}
}

// readErr parses the loop's stderr: the login shell's noise (an rc
// file's) up to the ready line is dropped, then each command's stderr goes
// to the current errSink up to its end of frame.
func (s *shellSession) readErr(stderr io.Reader) {
	defer close(s.errDead)
	m := &marked{r: stderr, chunk: make([]byte, 4<<10)}
	if m.skipTo([]byte("R"+s.marker+"\n")) < 0 {
		return
	}
	end := []byte("\nS" + s.marker + "\n")
	for m.until(end, s.writeErr) {
		s.mu.Lock()
		s.errEnded++
		close(s.errTick)
		s.errTick = make(chan struct{})
		s.mu.Unlock()
	}
}

func (s *shellSession) write(b []byte) {
	if len(b) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sink != nil {
		_, _ = s.sink.Write(b)
	}
}

func (s *shellSession) writeErr(b []byte) {
	if len(b) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.errSink != nil {
		_, _ = s.errSink.Write(b)
	}
}

func (s *shellSession) setSink(w io.Writer) {
	s.mu.Lock()
	s.sink, s.errSink = w, nil
	if w != nil {
		s.errSink = stderrOf(w)
	}
	s.mu.Unlock()
}

// sent counts a command sent to the loop (under busy).
func (s *shellSession) sent() { s.errSent++ }

// waitErr waits for the end of the last command's stderr, which the loop
// printed before its status: it is in the client's buffer already, or
// the session is gone.
func (s *shellSession) waitErr() {
	timeout := time.After(s.grace)
	for {
		s.mu.Lock()
		done, tick := s.errEnded >= s.errSent, s.errTick
		s.mu.Unlock()
		if done {
			return
		}
		select {
		case <-tick:
		case <-s.errDead:
			return
		case <-timeout:
			return
		}
	}
}

func (s *shellSession) isDead() bool {
	select {
	case <-s.dead:
		return true
	default:
		return false
	}
}

func (s *shellSession) close() { _ = s.sess.Close() }

// errSessionLost means the session ended while a command ran (the
// connection dropped, or the remote shell died): the command's outcome is
// unknown.
var errSessionLost = errors.New("shell session lost")

// run sends one command and waits for its end. When ctx ends first, the
// command's process group is killed; the session stays in use if the loop
// reports the end within s.grace, and is closed otherwise.
func (s *shellSession) run(ctx context.Context, cmd string, out io.Writer) error {
	select {
	case s.busy <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.dead:
		return s.endErr()
	}
	defer func() { <-s.busy }()
	if err := ctx.Err(); err != nil {
		return err
	}
	s.setSink(out)
	defer s.setSink(nil)
	// "B<marker> 2": the caller keeps stderr apart; plain "B<marker>":
	// stderr joins stdout on the host, in the order it was written.
	begin := "B" + s.marker
	if _, apart := out.(interface{ Stderr() io.Writer }); apart {
		begin += " 2"
	}
	frame := begin + "\n" + cmd + "\nE" + s.marker + "\n"
	// A write blocks only while the host does not read: give up on the
	// session if ctx ends meanwhile.
	stop := context.AfterFunc(ctx, s.close)
	s.sent()
	_, err := io.WriteString(s.stdin, frame)
	if !stop() {
		return fmt.Errorf("command interrupted: %w", ctx.Err())
	}
	if err != nil {
		// The session ended, maybe before it ever ran the loop: then
		// the command did not run, and may run alone.
		s.close()
		<-s.dead
		if s.startErr != nil {
			return s.startErr
		}
		return fmt.Errorf("%w: send command: %w", errSessionLost, err)
	}
	select {
	case f, ok := <-s.frames:
		if !ok {
			return s.endErr()
		}
		s.waitErr()
		if f.status != 0 {
			return &ExitError{Code: f.status, Cmd: cmd}
		}
		return nil
	case <-ctx.Done():
	}
	// The watcher kills the process group on any line. The write is not
	// waited for: on a host that does not read, the timer below closes the
	// session, which ends it.
	go func() { _, _ = io.WriteString(s.stdin, "K\n") }()
	select {
	case <-s.frames:
		s.waitErr()
	case <-time.After(s.grace):
		s.close()
		<-s.dead
	}
	return fmt.Errorf("command interrupted: %w", ctx.Err())
}

// upload runs cmd with exactly size bytes of r as its stdin. It cannot be
// killed by a line (the stream carries the data): when ctx ends, or r
// fails, the session is closed, which ends the command.
func (s *shellSession) upload(ctx context.Context, cmd string, r io.Reader, size int64, out io.Writer) error {
	select {
	case s.busy <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.dead:
		return s.endErr()
	}
	defer func() { <-s.busy }()
	s.setSink(out)
	defer s.setSink(nil)
	stop := context.AfterFunc(ctx, s.close)
	defer stop()
	frame := "U" + s.marker + " " + strconv.FormatInt(size, 10) + "\n" + cmd + "\nE" + s.marker + "\n"
	s.sent()
	_, err := io.WriteString(s.stdin, frame)
	if err == nil {
		var n int64
		n, err = io.CopyN(s.stdin, r, size)
		if err != nil && n < size && errors.Is(err, io.EOF) {
			err = fmt.Errorf("the source ended after %d of %d bytes", n, size)
		}
	}
	if err != nil {
		s.close()
		if ctx.Err() != nil {
			return fmt.Errorf("upload interrupted: %w", ctx.Err())
		}
		if s.isDead() {
			return fmt.Errorf("%w: upload: %w", errSessionLost, err)
		}
		return err // the source failed: not a transport error
	}
	select {
	case f, ok := <-s.frames:
		if !ok {
			if ctx.Err() != nil {
				return fmt.Errorf("upload interrupted: %w", ctx.Err())
			}
			return errSessionLost
		}
		s.waitErr()
		if f.status != 0 {
			return &ExitError{Code: f.status, Cmd: cmd}
		}
		return nil
	case <-ctx.Done():
		<-s.dead
		return fmt.Errorf("upload interrupted: %w", ctx.Err())
	}
}

// session returns the connection's shell session, starting it on first
// use; nil means "run each command on its own".
func (cn *conn) session(ctx context.Context) (*shellSession, error) {
	cn.shellMu.Lock()
	defer cn.shellMu.Unlock()
	if cn.noShell {
		return nil, nil
	}
	if cn.shell != nil && !cn.shell.isDead() {
		return cn.shell, nil
	}
	s, err := cn.startSession(ctx)
	if err != nil {
		return nil, err
	}
	cn.shell = s
	return s, nil
}

// noSession records that s could not run the loop: later commands of this
// connection run alone.
func (cn *conn) noSession(s *shellSession) {
	cn.shellMu.Lock()
	defer cn.shellMu.Unlock()
	cn.noShell = true
	if cn.shell == s {
		cn.shell = nil
	}
	s.close()
}

// partialSuffix is the length of the longest end of buf that begins
// marker (shorter than marker): bytes that must wait for the next read.
func partialSuffix(buf, marker []byte) int {
	for k := min(len(marker)-1, len(buf)); k > 0; k-- {
		if bytes.HasSuffix(buf, marker[:k]) {
			return k
		}
	}
	return 0
}

// frameable says whether cmd can travel in a frame: the loop holds it in a
// shell variable, which cannot hold a NUL.
func frameable(cmd string) bool { return !strings.ContainsRune(cmd, 0) }
