package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procStat is what the lab needs from /proc/PID/stat.
type procStat struct {
	State     byte   // R, S, D, Z, X, ...
	StartTime uint64 // clock ticks after boot; with the PID it names a process uniquely
}

// readProcStat parses /proc/PID/stat. The command name (field 2) may contain
// spaces and parentheses, so fields are counted after its closing ')'.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return procStat{State: f[0][0], StartTime: st}, nil
}

// alive reports whether pid is a running process. A zombie counts as exited:
// in some sandboxes PID 1 reaps orphans slowly.
func alive(pid int) bool {
	s, err := readProcStat(pid)
	return err == nil && s.State != 'Z' && s.State != 'X' && s.State != 'x'
}

// processStartTime returns the start time of a live pid, or 0.
func processStartTime(pid int) uint64 {
	s, err := readProcStat(pid)
	if err != nil || s.State == 'Z' || s.State == 'X' {
		return 0
	}
	return s.StartTime
}

// sameProcessAlive reports whether the process (pid, start) still runs: the
// start time guards against a reused PID.
func sameProcessAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	s, err := readProcStat(pid)
	if err != nil || s.State == 'Z' || s.State == 'X' {
		return false
	}
	return start == 0 || s.StartTime == start
}

// procComm returns /proc/PID/comm without the newline.
func procComm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// waitExited polls until every pid has exited (or is a zombie) or timeout.
// It returns the pids still alive.
func waitExited(pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var left []int
		for _, p := range pids {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run runs a command and returns its trimmed combined output; a failure
// carries the output in the error.
func run(ctx context.Context, name string, args ...string) (string, error) {
	return runInput(ctx, "", name, args...)
}

func runInput(ctx context.Context, stdin, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		if s != "" {
			return s, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, s)
		}
		return s, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return s, nil
}

// daemon is a process the lab started directly (sshd, haproxy). Its own
// goroutine reaps it, so a killed daemon never lingers as our zombie.
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's; read only after done is closed
}

// startDaemon starts cmd in its own session (a Ctrl-C at the terminal does not
// reach it), with stdin from /dev/null and output appended to logPath.
func startDaemon(name, logPath string, cmd *exec.Cmd) (*daemon, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdin = nil
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// errDaemonExited reports a daemon that died while the lab waited for it.
var errDaemonExited = errors.New("exited early")
