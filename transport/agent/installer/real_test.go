package installer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testwait"
)

// The tests in this file run the real scripts: against this machine
// (TestLocalSupervisor, through sh -c) and against a lab host over SSH
// (lab_test.go). Both install a dummy agent, a shell script.

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// dummyAgent stands in for `drover agent run`: it checks its arguments and
// config, "enrolls" (writes state/agent.crt, as the real agent does once it
// joined), says which version it is, then idles.
func dummyAgent(version string) []byte {
	return []byte(`#!/bin/sh
[ "$1 $2 $3" = "agent run --config" ] || { echo "dummy agent: bad arguments: $*"; exit 2; }
dir=$(dirname "$4")
grep -q '^token_file: ' "$4" || { echo "dummy agent: bad config $4"; exit 2; }
if [ ! -f "$dir/state/agent.crt" ]; then
	[ -s "$dir/join.token" ] || { echo "dummy agent: no join token"; exit 2; }
	echo enrolled >"$dir/state/agent.crt"
fi
echo "dummy agent ` + version + ` pid $$ running"
while :; do sleep 1; done
`)
}

// localConn runs commands on this machine with sh -c and writes files
// atomically: a host that is this machine, without SSH.
func localConn() Conn {
	return &fakeConn{
		run: func(ctx context.Context, cmd string, out io.Writer) error {
			c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
			c.Stdin = nil
			c.Stdout, c.Stderr = out, out
			c.WaitDelay = 5 * time.Second
			return c.Run()
		},
		put: func(ctx context.Context, p string, r io.Reader, mode fs.FileMode) error {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".drover-tmp-test")
			if err := os.WriteFile(tmp, b, mode); err != nil {
				return err
			}
			if err := os.Chmod(tmp, mode); err != nil {
				return err
			}
			return os.Rename(tmp, p)
		},
	}
}

// TestLocalSupervisor runs the real supervisor scripts on this machine in a
// temp dir: no root, no SSH needed.
func TestLocalSupervisor(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the supervisor scripts use /proc: Linux only")
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("this machine runs systemd: Install would use it (the lab test covers the supervisor)")
	}
	dir := filepath.Join(t.TempDir(), "drover-agent")
	if checkDir(dir) != nil {
		t.Skipf("temp dir %s is not usable as an install dir", dir)
	}
	opts := Options{
		Dir:  dir,
		Dial: func(context.Context, Target) (Conn, error) { return localConn(), nil },
		Out:  testLog{t},
	}
	exercise(t, opts, Target{Name: "local"}, func(p string) string { return p })
}

// exercise installs the dummy agent on target, checks that the supervisor
// runs it, that a second Install changes nothing, that an upgrade restarts
// the agent under the same supervisor, and that Uninstall stops both and
// removes everything. local maps a path on the host to this machine.
func exercise(t *testing.T, opts Options, target Target, local func(string) string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := local(opts.Dir)
	bin := filepath.Join(t.TempDir(), "dummy-agent")
	if err := os.WriteFile(bin, dummyAgent("v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	var tokens atomic.Int32
	opts.Binary = func(goarch string) (string, error) {
		if goarch != runtime.GOARCH {
			return "", fmt.Errorf("the dummy agent is for %s only", runtime.GOARCH)
		}
		return bin, nil
	}
	opts.CA = []byte(testCA)
	opts.Coordinators = []string{"10.200.0.5:7443"}
	opts.Token = func(ctx context.Context, host string) (string, error) {
		tokens.Add(1)
		return "token-for-" + host, nil
	}
	supPidFile, agentPidFile := filepath.Join(dir, "run", "supervise.pid"), filepath.Join(dir, "run", "agent.pid")
	const supPat, agentPat = "run/supervise.sh", "bin/drover agent run"
	t.Cleanup(func() { // whatever a failed test left running
		for _, pf := range [][2]string{{supPidFile, supPat}, {agentPidFile, agentPat}} {
			if pid, ok := livePid(pf[0], pf[1]); ok {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	install := func(want string) {
		t.Helper()
		res, err := Install(ctx, []Target{target}, opts)
		if err != nil {
			t.Fatalf("Install: %v", err)
		}
		one(t, res, Result{Host: target.Name, Action: want, Supervisor: SupervisorDrover})
	}
	// waitAgent waits for an agent other than old, running version.
	waitAgent := func(old int, version string) int {
		t.Helper()
		var pid int
		testwait.Within(t, 10*time.Second, "the supervisor runs the "+version+" agent", func() bool {
			var ok bool
			pid, ok = livePid(agentPidFile, agentPat)
			log, _ := os.ReadFile(filepath.Join(dir, "run", "agent.log"))
			return ok && pid != old && bytes.Contains(log, fmt.Appendf(nil, "dummy agent %s pid %d running", version, pid))
		})
		return pid
	}

	start := time.Now()
	install(ActionInstalled)
	t.Logf("first install took %v", time.Since(start))
	sup, ok := livePid(supPidFile, supPat)
	if !ok {
		t.Fatal("no live supervisor after Install")
	}
	agent := waitAgent(0, "v1")
	if _, err := os.Stat(filepath.Join(dir, "state", "agent.crt")); err != nil {
		t.Fatalf("the agent did not enroll: %v", err)
	}
	if st, err := os.Stat(filepath.Join(dir, "join.token")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("join.token: %v, %v", st, err)
	}

	start = time.Now()
	install(ActionUnchanged)
	t.Logf("unchanged install took %v", time.Since(start))
	if p, _ := livePid(supPidFile, supPat); p != sup {
		t.Errorf("supervisor %d after an unchanged run, was %d", p, sup)
	}
	if p, _ := livePid(agentPidFile, agentPat); p != agent {
		t.Errorf("agent %d after an unchanged run, was %d", p, agent)
	}
	if n := tokens.Load(); n != 1 {
		t.Errorf("Token called %d times, want 1", n)
	}

	if err := os.WriteFile(bin, dummyAgent("v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	install(ActionUpgraded)
	t.Logf("upgrade took %v", time.Since(start))
	agent2 := waitAgent(agent, "v2")
	if p, _ := livePid(supPidFile, supPat); p != sup {
		t.Errorf("supervisor %d after the upgrade, was %d: it should have stayed", p, sup)
	}
	waitGone(t, agent)

	res, err := Uninstall(ctx, []Target{target}, opts)
	if err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	one(t, res, Result{Host: target.Name, Action: ActionUninstalled, Supervisor: SupervisorDrover})
	waitGone(t, sup, agent2)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", dir, err)
	}
	res, err = Uninstall(ctx, []Target{target}, opts)
	if err != nil {
		t.Fatalf("second Uninstall: %v", err)
	}
	one(t, res, Result{Host: target.Name, Action: ActionAbsent})
}

// livePid reads a PID file and says whether that process lives (not a
// zombie) with pattern in its command line.
func livePid(pidFile, pattern string) (int, bool) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !alive(pid) {
		return pid, false
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return pid, bytes.Contains(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}), []byte(pattern))
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	testwait.Within(t, 15*time.Second, fmt.Sprintf("processes %v exit", pids), func() bool {
		for _, p := range pids {
			if alive(p) {
				return false
			}
		}
		return true
	})
}

// TestLocalUninstallRefusesForeignDir: a wrong --dir must not rm -rf
// someone else's files; a partial install (folders only) is removed.
func TestLocalUninstallRefusesForeignDir(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if checkDir(dir) != nil {
		t.Skipf("temp dir %s is not usable as an install dir", dir)
	}
	opts := Options{Dir: dir, Dial: func(context.Context, Target) (Conn, error) { return localConn(), nil }}
	for _, d := range []string{"bin", "run", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "precious.db"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Uninstall(context.Background(), []Target{{Name: "local"}}, opts)
	if err == nil || !strings.Contains(err.Error(), "local: uninstall: ") || !strings.Contains(err.Error(), "does not look like a drover agent install (it holds precious.db)") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious.db")); err != nil {
		t.Fatalf("a foreign file was removed: %v", err)
	}

	os.Remove(filepath.Join(dir, "precious.db"))
	res, err := Uninstall(context.Background(), []Target{{Name: "local"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	one(t, res, Result{Host: "local", Action: ActionUninstalled})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s: %v", dir, err)
	}
}
