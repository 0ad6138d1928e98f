package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a long-running process the lab started in a node's namespace
// (Start). Down kills it with everything else in the lab.
type Proc struct {
	name, node, logPath string
	d                   *daemon
}

var procNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Start starts argv in node's network namespace ("ctl", "lb", a coordinator
// such as "c1", or a web host, whose network only: not its /srv nor its host
// name) as a daemon: in its own session, stdin from /dev/null, stdout and
// stderr appended to <lab dir>/logs/<name>.log, reaped by its own goroutine.
// env is added to this process's environment. ctx bounds only the start: the
// process runs until it exits, Signal or Kill, or Down. name must be a file
// name (letters, digits, '.', '_', '-') and not that of a running Proc; a
// restarted process may reuse it (its log is appended to).
func (l *Lab) Start(ctx context.Context, node, name string, argv []string, env []string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("lab: Start: empty argv")
	}
	if !procNameRE.MatchString(name) {
		return nil, fmt.Errorf("lab: Start: name %q: use letters, digits, '.', '_', '-'", name)
	}
	ns, err := l.nodeNS(node)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logPath := filepath.Join(l.Dir, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	// Held while starting: Down cannot miss a process started concurrently.
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isDown {
		return nil, fmt.Errorf("lab %s: Start %s: the lab is down", l.ID, name)
	}
	key := "proc/" + name
	for k, d := range l.daemons {
		if strings.HasPrefix(k, key+"/") && !d.exited() {
			return nil, fmt.Errorf("lab %s: Start: %s is running (pid %d)", l.ID, name, d.pid())
		}
	}
	// ip netns exec execs argv[0]: the process started is the program itself.
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	d, err := startDaemon(name, logPath, cmd)
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", l.ID, err)
	}
	l.daemons[key+"/"+strconv.Itoa(d.pid())] = d
	return &Proc{name: name, node: node, logPath: logPath, d: d}, nil
}

// nodeNS returns the namespace of one of the lab's nodes.
func (l *Lab) nodeNS(node string) (string, error) {
	ns := nsName(l.ID, node)
	for _, n := range l.namespaces() {
		if n == ns {
			return ns, nil
		}
	}
	return "", fmt.Errorf("lab %s: no node %q", l.ID, node)
}

// Pid is the process's PID.
func (p *Proc) Pid() int { return p.d.pid() }

// Name is the name given to Start.
func (p *Proc) Name() string { return p.name }

// Node is the node it runs on.
func (p *Proc) Node() string { return p.node }

// LogPath is the file its stdout and stderr go to.
func (p *Proc) LogPath() string { return p.logPath }

// Exited reports whether the process has exited (and been reaped).
func (p *Proc) Exited() bool { return p.d.exited() }

// Signal sends sig to the process (not to its children). After the process
// exited it returns os.ErrProcessDone.
func (p *Proc) Signal(sig os.Signal) error { return p.d.cmd.Process.Signal(sig) }

// Kill SIGKILLs the process and its process group (what it started and did
// not move to another group) and waits until it is reaped: a crash of the
// node's process. Killing an exited process is not an error.
func (p *Proc) Kill() error {
	if p.Exited() {
		return nil
	}
	// Its own session: the process group is the PID.
	if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s (pid %d): %w", p.name, p.Pid(), err)
	}
	select {
	case <-p.d.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL for 10s", p.name, p.Pid())
	}
}

// Wait waits for the process to exit and returns how it ended: nil for exit
// status 0, else an *exec.ExitError (a signal shows in its ProcessState).
// If ctx ends first it returns ctx's error and the process keeps running.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.d.done:
		return p.d.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
