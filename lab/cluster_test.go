package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/lb/haproxy"
)

// dialFrom opens a TCP connection from node's namespace.
func dialFrom(l *Lab, node, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	var err error
	if nerr := inNode(l, node, func() { c, err = net.DialTimeout("tcp", addr, timeout) }); nerr != nil {
		return nil, nerr
	}
	return c, err
}

// reach reports whether node can open a TCP connection to addr; a failure
// must be a timeout (a cut loses packets, it refuses nothing).
func reach(t *testing.T, l *Lab, node, addr string) bool {
	t.Helper()
	c, err := dialFrom(l, node, addr, 300*time.Millisecond)
	if err == nil {
		c.Close()
		return true
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%s -> %s: %v, want a timeout", node, addr, err)
	}
	return false
}

// runtimeAPI sends raw bytes to HAProxy's runtime API over TCP from node and
// reads the answer to EOF.
func runtimeAPI(t *testing.T, l *Lab, node, data string) string {
	t.Helper()
	c, err := dialFrom(l, node, l.HAProxyAddress, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, data); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("%q: %v", data, err)
	}
	return string(b)
}

// TestCluster covers what coordinator tests need from the lab: the host and
// HAProxy audit logs, processes in coordinator namespaces and partitions.
func TestCluster(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := Up(ctx, Options{Hosts: 2, Coordinators: 3, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Up(2 hosts, 3 coordinators) took %v", time.Since(start))
	t.Cleanup(func() { l.Down() })
	if l.HAProxyAddress != "10.200.0.2:9999" {
		t.Errorf("HAProxyAddress = %q", l.HAProxyAddress)
	}

	t.Run("host audit", func(t *testing.T) {
		t0 := time.Now()
		// stdin, stdout, stderr and the exit status pass through unchanged.
		stdin := []byte("bin\x00ary\nno newline")
		cmd, _ := l.SSH(ctx, "web1", "printf out; printf err >&2; cat; exit 7")
		var stdout, stderr bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 || stdout.String() != "out"+string(stdin) || stderr.String() != "err" {
			t.Errorf("ssh: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
		}
		multi := "printf '%s|' 'a\\b' \\\n  \"c\"\nprintf '%s\\n' x; exit 0"
		if out := mustSSH(t, ctx, l, "web1", multi, nil); out != "a\\b|c|x" {
			t.Errorf("multi-line command: %q", out)
		}
		// From a coordinator: the source address is the coordinator's.
		args := append(l.SSHArgs(), "root@"+l.Hosts[0].Address, "hostname")
		c1ssh, _ := l.CommandIn(ctx, "c1", "ssh", args...)
		if out, err := c1ssh.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "web1" {
			t.Errorf("ssh from c1: %q %v", out, err)
		}
		// Concurrent sessions: one whole line each.
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := sshRun(ctx, l, "web2", fmt.Sprintf("echo %d >/dev/null", i), nil); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		// scp uses the SFTP subsystem.
		src := filepath.Join(t.TempDir(), "up.txt")
		os.WriteFile(src, []byte("payload\n"), 0o644)
		scpArgs := append(l.SSHArgs(), src, "root@"+l.Hosts[1].Address+":/srv/up.txt")
		if out, err := l.Command(ctx, "scp", scpArgs...).CombinedOutput(); err != nil {
			t.Fatalf("scp: %v %s", err, out)
		}
		t1 := time.Now()

		web1, err := l.HostAudit("web1")
		if err != nil {
			t.Fatal(err)
		}
		want := []AuditEntry{
			{From: "10.200.0.1", Command: "printf out; printf err >&2; cat; exit 7"},
			{From: "10.200.0.1", Command: multi},
			{From: "10.200.0.5", Command: "hostname"},
		}
		if len(web1) != len(want) {
			t.Fatalf("web1 audit: %v", web1)
		}
		for i, e := range web1 {
			if e.From != want[i].From || e.Command != want[i].Command || e.Time.Before(t0) || e.Time.After(t1) {
				t.Errorf("web1 entry %d = %v, want %v between %v and %v", i, e, want[i], t0, t1)
			}
		}
		web2, err := l.HostAudit("web2")
		if err != nil {
			t.Fatal(err)
		}
		var cmds []string
		for _, e := range web2 {
			cmds = append(cmds, e.Command)
		}
		for i := range 12 {
			if !slices.Contains(cmds, fmt.Sprintf("echo %d >/dev/null", i)) {
				t.Errorf("web2: session %d not logged: %q", i, cmds)
			}
		}
		if !slices.Contains(cmds, "sftp") ||
			!slices.ContainsFunc(cmds, func(c string) bool { return strings.HasPrefix(c, `sftp open "/srv/up.txt" flags WRITE`) }) ||
			!slices.Contains(cmds, `sftp close "/srv/up.txt" bytes read 0 written 8`) {
			t.Errorf("web2: the scp upload is not in the audit: %q", cmds)
		}
		// sshd's own log still counts the logins.
		if n := acceptedLogins(t, l, "web1"); n != 3 {
			t.Errorf("web1's sshd logged %d logins, want 3", n)
		}
		if _, err := l.HostAudit("web9"); err == nil {
			t.Error("HostAudit(web9): no error")
		}
	})

	t.Run("haproxy relay", func(t *testing.T) {
		t0 := time.Now()
		// drover's own driver, from a coordinator's namespace, over TCP.
		var servers []haproxy.Server
		var derr error
		if err := inNode(l, "c2", func() {
			d, err := haproxy.New(haproxy.Config{Address: l.HAProxyAddress})
			if err != nil {
				derr = err
				return
			}
			servers, derr = d.Servers(ctx)
		}); err != nil || derr != nil {
			t.Fatalf("driver over TCP from c2: %v %v", err, derr)
		}
		if len(servers) != 2 {
			t.Errorf("servers over TCP: %+v", servers)
		}
		// Answers are passed through byte for byte.
		direct, err := l.HAProxy(ctx, "show backend")
		if err != nil {
			t.Fatal(err)
		}
		if got := runtimeAPI(t, l, "c1", "show backend\n"); got != direct {
			t.Errorf("over TCP %q, direct %q", got, direct)
		}
		if got := runtimeAPI(t, l, "c1", "set server web/web1 state maint; show backend\n"); got != "\n"+direct {
			t.Errorf("two commands: %q", got)
		}
		if st, _ := l.ServerStates(ctx); st["web1"] != "MAINT" {
			t.Errorf("web1 after maint over TCP: %q", st["web1"])
		}
		got := runtimeAPI(t, l, "c1", "prompt\nset server web/web1 state ready\nquit\n")
		if !strings.HasPrefix(got, "\n> ") {
			t.Errorf("prompt mode: %q", got)
		}
		if st, _ := l.ServerStates(ctx); st["web1"] == "MAINT" {
			t.Errorf("web1 after ready over TCP: %q", st["web1"])
		}
		t1 := time.Now()
		entries, err := l.LBAudit()
		if err != nil {
			t.Fatal(err)
		}
		var from []string
		var cmds []string
		for _, e := range entries {
			if e.Time.Before(t0) || e.Time.After(t1) {
				t.Errorf("entry %v not between %v and %v", e, t0, t1)
			}
			from = append(from, e.From)
			cmds = append(cmds, e.Command)
		}
		i := slices.Index(cmds, "show backend")
		if i < 1 || slices.ContainsFunc(from[:i], func(f string) bool { return f != "10.200.0.6" }) {
			t.Fatalf("the driver's commands from c2 (10.200.0.6): %q from %q", cmds, from)
		}
		want := []string{"show backend", "set server web/web1 state maint", "show backend", "prompt", "set server web/web1 state ready", "quit"}
		if !slices.Equal(cmds[i:], want) || slices.ContainsFunc(from[i:], func(f string) bool { return f != "10.200.0.5" }) {
			t.Errorf("LBAudit = %q from %q, want %q from 10.200.0.5", cmds[i:], from[i:], want)
		}
	})

	bin, err := buildDemoapp(ctx, t.TempDir(), Build{})
	if err != nil {
		t.Fatal(err)
	}
	var procs []*Proc
	t.Run("Start", func(t *testing.T) {
		for _, c := range l.Coordinators {
			p, err := l.Start(ctx, c.Name, "demo-"+c.Name, []string{bin, "--listen", c.Address + ":9000", "--version", c.Name}, []string{"LAB_TEST_VAR=" + c.Name})
			if err != nil {
				t.Fatal(err)
			}
			procs = append(procs, p)
		}
		for _, c := range l.Coordinators {
			var out []byte
			var err error
			testwait.Within(t, testwait.Limit, c.Name+"'s demoapp to answer", func() bool {
				out, err = l.Command(ctx, "curl", "-sS", "--noproxy", "*", "-m", "1", "http://"+c.Address+":9000/").Output()
				return err == nil && strings.HasPrefix(string(out), c.Name+" ")
			}, func() string { return fmt.Sprintf("last answer %q %v", out, err) })
		}
		p := procs[0]
		if pids, _ := nsPids(ctx, l.Coordinators[0].NS); !slices.Contains(pids, p.Pid()) {
			t.Errorf("pid %d is not in c1's namespace (%v)", p.Pid(), pids)
		}
		if env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.Pid())); !bytes.Contains(env, []byte("\x00LAB_TEST_VAR=c1\x00")) {
			t.Error("env not passed")
		}
		if p.LogPath() != filepath.Join(l.Dir, "logs", "demo-c1.log") {
			t.Errorf("LogPath = %s", p.LogPath())
		}
		if _, err := l.Start(ctx, "c1", "demo-c1", []string{"true"}, nil); err == nil {
			t.Error("a second running demo-c1: no error")
		}
		for _, bad := range [][2]string{{"c9", "x"}, {"c1", "../x"}, {"c1", ""}} {
			if _, err := l.Start(ctx, bad[0], bad[1], []string{"true"}, nil); err == nil {
				t.Errorf("Start(%q, %q): no error", bad[0], bad[1])
			}
		}
		wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
		if err := p.Wait(wctx); !errors.Is(err, context.DeadlineExceeded) || p.Exited() {
			t.Errorf("Wait on a running process: %v, exited %v", err, p.Exited())
		}
		wcancel()
		// SIGTERM: the demo app shuts down gracefully.
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(ctx); err != nil || !p.Exited() {
			t.Errorf("after SIGTERM: %v, exited %v", err, p.Exited())
		}
		if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("Signal after exit: %v", err)
		}
		// Same name again: allowed once the first one exited; the log goes on.
		p, err := l.Start(ctx, "c1", "demo-c1", []string{bin, "--listen", "10.200.0.5:9000", "--version", "c1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		procs[0] = p
		// Kill: a crash, reaped at once.
		k, err := l.Start(ctx, "ctl", "sleeper", []string{"sh", "-c", "sleep 300 & echo started; wait"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		testwait.For(t, "the sleeper to start", func() bool {
			b, _ := os.ReadFile(k.LogPath())
			return string(b) == "started\n"
		})
		ctlPids, _ := nsPids(ctx, l.CtlNS)
		if err := k.Kill(); err != nil || !k.Exited() {
			t.Fatalf("Kill: %v, exited %v", err, k.Exited())
		}
		var ee *exec.ExitError
		if err := k.Wait(ctx); !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("Wait after Kill: %v", err)
		}
		var sleeps []int
		for _, pid := range ctlPids {
			if procComm(pid) == "sleep" {
				sleeps = append(sleeps, pid)
			}
		}
		if left := waitExited(sleeps, 2*time.Second); len(sleeps) != 1 || len(left) != 0 {
			t.Errorf("Kill left the child sleep running (sleeps %v, alive %v)", sleeps, left)
		}
		if err := k.Kill(); err != nil {
			t.Errorf("second Kill: %v", err)
		}
		// A process on a web host's network.
		w, err := l.Start(ctx, "web1", "web1-sleeper", []string{"sleep", "300"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, w)
	})

	t.Run("Isolate and Heal", func(t *testing.T) {
		c1, c2, c3 := "10.200.0.5:9000", "10.200.0.6:9000", "10.200.0.7:9000"
		// The demo apps restarted just before may still be starting.
		up := func(node, addr string) bool {
			c, err := dialFrom(l, node, addr, 300*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err == nil
		}
		testwait.For(t, "c1, c2 and c3 to reach each other before any cut", func() bool {
			return up("c1", c2) && up("c2", c1) && up("c1", c3)
		})
		// An HTTP keep-alive connection open across the cut.
		open, err := dialFrom(l, "c1", c2, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer open.Close()
		get := func() error {
			open.SetDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := io.WriteString(open, "GET / HTTP/1.1\r\nHost: c2\r\n\r\n"); err != nil {
				return err
			}
			buf := make([]byte, 4096)
			_, err := open.Read(buf)
			return err
		}
		if err := get(); err != nil {
			t.Fatal(err)
		}

		for range 2 { // idempotent
			if err := l.Isolate(ctx, "c1", "c2"); err != nil {
				t.Fatal(err)
			}
		}
		if cuts := l.Cuts(); !slices.Equal(cuts, [][2]string{{"c1", "c2"}}) {
			t.Errorf("Cuts = %v", cuts)
		}
		if reach(t, l, "c1", c2) || reach(t, l, "c2", c1) {
			t.Error("c1 and c2 still reach each other")
		}
		if err := get(); err == nil {
			t.Error("the open connection still works across the cut")
		}
		// Everything else still works, c1 included.
		for _, p := range [][2]string{{"c1", c3}, {"c3", c1}, {"c2", c3}, {"ctl", c1}, {"c1", l.HAProxyAddress}, {"c1", l.Hosts[0].SSHAddress}} {
			if !reach(t, l, p[0], p[1]) {
				t.Errorf("%s -> %s cut too", p[0], p[1])
			}
		}
		// The control node (on the bridge) can be cut too.
		if err := l.Isolate(ctx, "c3", "ctl", "c2"); err != nil {
			t.Fatal(err)
		}
		if reach(t, l, "ctl", c3) || reach(t, l, "c3", c2) || !reach(t, l, "c3", c1) {
			t.Error("c3 is not cut from ctl and c2 only")
		}
		if err := l.Heal(ctx, "ctl"); err != nil {
			t.Fatal(err)
		}
		if !reach(t, l, "ctl", c3) {
			t.Error("ctl -> c3 still cut after Heal(ctl)")
		}
		// Heal from the other side of a cut.
		for range 2 {
			if err := l.Heal(ctx, "c2"); err != nil {
				t.Fatal(err)
			}
		}
		if cuts := l.Cuts(); len(cuts) != 0 {
			t.Errorf("Cuts after healing = %v", cuts)
		}
		if !reach(t, l, "c1", c2) || !reach(t, l, "c2", c1) || !reach(t, l, "c3", c2) {
			t.Error("still cut after Heal")
		}
		for _, bad := range [][]string{{"c1"}, {"c1", "c1"}, {"c1", "c9"}, {"nope", "c1"}} {
			if err := l.Isolate(ctx, bad[0], bad[1:]...); err == nil {
				t.Errorf("Isolate(%q): no error", bad)
			}
		}
	})

	t.Run("Down kills started processes", func(t *testing.T) {
		if len(procs) != 4 {
			t.Fatalf("%d processes started", len(procs))
		}
		var pids []int
		for _, p := range procs {
			if p.Exited() {
				t.Errorf("%s exited before Down", p.Name())
			}
			pids = append(pids, p.Pid())
		}
		if err := l.Down(); err != nil {
			t.Fatal(err)
		}
		for _, p := range procs {
			if !p.Exited() {
				t.Errorf("%s (pid %d) survived Down", p.Name(), p.Pid())
			}
		}
		assertGone(t, ctx, l.ID, l.Dir, pids)
		if _, err := l.Start(ctx, "c1", "late", []string{"true"}, nil); err == nil {
			t.Error("Start after Down: no error")
		}
	})
}

// acceptedLogins counts the logins a host's sshd logged.
func acceptedLogins(t *testing.T, l *Lab, host string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.hostDir(host), "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "Accepted publickey")
}
