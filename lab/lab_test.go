package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/lb/haproxy"
)

// requireLab skips a test that needs root and the lab's programs, except in
// CI (CI=true), where a skip would hide a broken runner: there it fails.
func requireLab(t *testing.T) {
	t.Helper()
	if err := checkPrerequisites(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the lab cannot run: %v", err)
		}
		t.Skipf("skipping the lab test: %v (run as root with iproute2, openssh-server, haproxy, curl)", err)
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// up starts a lab torn down at the end of the test.
func up(t *testing.T, ctx context.Context, hosts int) *Lab {
	t.Helper()
	start := time.Now()
	l, err := Up(ctx, Options{Hosts: hosts, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Up(%d hosts) took %v", hosts, time.Since(start))
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	return l
}

// sshRun runs script on host over ssh (strict host keys) with stdin.
func sshRun(ctx context.Context, l *Lab, host, script string, stdin []byte) (string, error) {
	cmd, err := l.SSH(ctx, host, script)
	if err != nil {
		return "", err
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), errors.Join(err, errors.New(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

func mustSSH(t *testing.T, ctx context.Context, l *Lab, host, script string, stdin []byte) string {
	t.Helper()
	out, err := sshRun(ctx, l, host, script, stdin)
	if err != nil {
		t.Fatalf("ssh %s %q: %v", host, script, err)
	}
	return out
}

// install unpacks an artifact into /srv/app/releases/<version> on host,
// points current at it and runs bin/restart: drover's install + activate,
// by hand.
func install(t *testing.T, ctx context.Context, l *Lab, host, version, artifact string) {
	t.Helper()
	data, err := os.ReadFile(artifact)
	if err != nil {
		t.Fatal(err)
	}
	script := "set -e; r=/srv/app/releases/" + version + "; rm -rf $r; mkdir -p $r; tar -xzf - -C $r; " +
		"ln -sfn releases/" + version + " /srv/app/current.tmp; mv -T /srv/app/current.tmp /srv/app/current; " +
		"/srv/app/current/bin/restart"
	start := time.Now()
	out := mustSSH(t, ctx, l, host, script, data)
	// restart must detach the app: the session ends at once.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("install on %s took %v: restart did not detach the app", host, d)
	}
	if !strings.Contains(out, "restart: started") {
		t.Errorf("restart on %s said %q", host, out)
	}
}

// waitVersion waits until host's app answers with version.
func waitVersion(t *testing.T, ctx context.Context, l *Lab, host, version string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		v, err := l.ServedVersion(ctx, host)
		if err == nil && v == version {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never served %s (last: %q, %v)", host, version, v, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func waitUp(t *testing.T, ctx context.Context, l *Lab, servers ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.WaitInRotation(ctx, servers...); err != nil {
		t.Fatal(err)
	}
}

func haproxyCmd(t *testing.T, ctx context.Context, l *Lab, cmd string) {
	t.Helper()
	out, err := l.HAProxy(ctx, cmd)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("haproxy %q: %q %v", cmd, out, err)
	}
}

// appPid returns the PID in host's /srv/app/app.pid.
func appPid(t *testing.T, l *Lab, host string) int {
	t.Helper()
	h, _ := l.Host(host)
	b, err := os.ReadFile(filepath.Join(h.SrvDir, "app", "app.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// demoapps lists the demoapp processes in a host's network namespace.
func demoapps(t *testing.T, ctx context.Context, l *Lab, host string) []int {
	t.Helper()
	h, _ := l.Host(host)
	pids, err := nsPids(ctx, h.NS)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, p := range pids {
		if procComm(p) == "demoapp" {
			out = append(out, p)
		}
	}
	return out
}

func TestLab(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	l := up(t, ctx, 2)

	artDir := t.TempDir()
	start := time.Now()
	v1, err := BuildArtifact(ctx, artDir, "v1", false)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := BuildArtifact(ctx, artDir, "v2", false)
	if err != nil {
		t.Fatal(err)
	}
	v3, err := BuildArtifact(ctx, artDir, "v3", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("3 artifacts built in %v", time.Since(start))

	if n, out, err := l.OutOfRotation(ctx); err != nil || n != 2 || !slices.Equal(out, []string{"web1", "web2"}) {
		t.Fatalf("before any app: OutOfRotation = %d %v %v, want both DOWN", n, out, err)
	}

	ok := t.Run("ssh, /srv and hostname per host", func(t *testing.T) {
		for _, h := range l.Hosts {
			if got := mustSSH(t, ctx, l, h.Name, "hostname", nil); got != h.Name {
				t.Errorf("%s: hostname %q", h.Name, got)
			}
		}
		mustSSH(t, ctx, l, "web1", "echo from-web1 > /srv/marker", nil)
		if b, err := os.ReadFile(filepath.Join(l.Hosts[0].SrvDir, "marker")); err != nil || string(b) != "from-web1\n" {
			t.Errorf("web1's SrvDir: %q %v", b, err)
		}
		if out := mustSSH(t, ctx, l, "web2", "ls -A /srv; test ! -e /srv/marker && echo absent", nil); out != "absent" {
			t.Errorf("web2 sees web1's /srv: %q", out)
		}
		if _, err := os.Stat("/srv/marker"); err == nil {
			t.Error("the root namespace's /srv got web1's file")
		}
		// Strict host key checking is really on: web2's key for web1's address fails.
		wrong := filepath.Join(t.TempDir(), "known_hosts")
		kh, _ := os.ReadFile(l.KnownHosts)
		lines := strings.Split(strings.TrimSpace(string(kh)), "\n")
		swapped := strings.Replace(lines[1], l.Hosts[1].Address, l.Hosts[0].Address, 1)
		if err := os.WriteFile(wrong, []byte(swapped+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append(l.sshArgs(wrong), "root@"+l.Hosts[0].Address, "true")
		if out, err := l.Command(ctx, "ssh", args...).CombinedOutput(); err == nil {
			t.Errorf("ssh with a wrong host key succeeded: %s", out)
		}
		// scp goes through the sftp subsystem (OpenSSH 9 scp uses SFTP).
		art := filepath.Join(t.TempDir(), "scp-me")
		os.WriteFile(art, []byte("payload\n"), 0o644)
		scpArgs := append(l.SSHArgs(), art, "root@"+l.Hosts[1].Address+":/srv/scp-me")
		if out, err := l.Command(ctx, "scp", scpArgs...).CombinedOutput(); err != nil {
			t.Fatalf("scp: %v %s", err, out)
		}
		if b, _ := os.ReadFile(filepath.Join(l.Hosts[1].SrvDir, "scp-me")); string(b) != "payload\n" {
			t.Errorf("scp'd file = %q", b)
		}
	})
	if !ok {
		return
	}

	ok = t.Run("install v1 by hand", func(t *testing.T) {
		for _, h := range l.Hosts {
			install(t, ctx, l, h.Name, "v1", v1)
		}
		for _, h := range l.Hosts {
			waitVersion(t, ctx, l, h.Name, "v1")
		}
		waitUp(t, ctx, l)
		seen := map[string]bool{}
		for range 6 {
			out, err := l.Command(ctx, "curl", "-sS", "--noproxy", "*", "-m", "2", "-f", l.FrontendURL).Output()
			if err != nil {
				t.Fatalf("frontend: %v", err)
			}
			seen[strings.TrimSpace(string(out))] = true
		}
		if !seen["v1 web1"] || !seen["v1 web2"] || len(seen) != 2 {
			t.Errorf("frontend answers %v, want \"v1 web1\" and \"v1 web2\"", seen)
		}
		if n, _, _ := l.OutOfRotation(ctx); n != 0 {
			t.Errorf("OutOfRotation = %d after install", n)
		}
	})
	if !ok {
		return
	}

	ok = t.Run("restart is idempotent", func(t *testing.T) {
		old := appPid(t, l, "web1")
		mustSSH(t, ctx, l, "web1", "/srv/app/current/bin/restart", nil)
		waitVersion(t, ctx, l, "web1", "v1")
		if alive(old) {
			t.Errorf("old app %d still runs", old)
		}
		apps := demoapps(t, ctx, l, "web1")
		if pid := appPid(t, l, "web1"); len(apps) != 1 || apps[0] != pid || pid == old {
			t.Errorf("apps %v, pidfile %d, old %d", apps, pid, old)
		}
		// With no app running, restart just starts one.
		mustSSH(t, ctx, l, "web1", "kill $(cat /srv/app/app.pid); while [ -e /srv/app/app.pid ]; do sleep 0.02; done", nil)
		mustSSH(t, ctx, l, "web1", "/srv/app/current/bin/restart", nil)
		waitVersion(t, ctx, l, "web1", "v1")
		if apps := demoapps(t, ctx, l, "web1"); len(apps) != 1 {
			t.Errorf("apps after restart from stopped: %v", apps)
		}
		// A pidfile naming another host's app (PIDs are shared) is not ours to kill.
		web2app := appPid(t, l, "web2")
		mustSSH(t, ctx, l, "web1", "kill $(cat /srv/app/app.pid); while [ -e /srv/app/app.pid ]; do sleep 0.02; done; echo "+strconv.Itoa(web2app)+" > /srv/app/app.pid; /srv/app/current/bin/restart", nil)
		waitVersion(t, ctx, l, "web1", "v1")
		if !alive(web2app) {
			t.Fatal("restart on web1 killed web2's app")
		}
		waitUp(t, ctx, l)
	})
	if !ok {
		return
	}

	ok = t.Run("rolling v2 by hand under load: zero failed requests", func(t *testing.T) {
		sampler := l.StartSampler(5 * time.Millisecond)
		load, err := l.StartLoad(ctx, 4)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // traffic before the rollout
		// The same drain and enable drover does, from its HAProxy driver.
		lb, err := haproxy.New(haproxy.Config{Socket: l.HAProxySocket, DrainTimeout: 10 * time.Second, EnableTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range l.Hosts {
			if err := lb.Drain(ctx, h.LBServer); err != nil {
				t.Fatal(err)
			}
			install(t, ctx, l, h.Name, "v2", v2)
			waitVersion(t, ctx, l, h.Name, "v2")
			if err := lb.Enable(ctx, h.LBServer); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(300 * time.Millisecond) // traffic after
		res, err := load.Stop()
		maxOut, samples := sampler.Stop()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("load: %+v; sampler: max %d out of rotation, %d samples", res, maxOut, samples)
		if res.Failures != 0 || res.Requests < 100 {
			t.Errorf("load: %d requests, %d failed: %v", res.Requests, res.Failures, res.FirstErrors)
		}
		if res.ByVersion["v1"] == 0 || res.ByVersion["v2"] == 0 {
			t.Errorf("by version %v, want both v1 and v2", res.ByVersion)
		}
		if maxOut != 1 || samples < 10 {
			t.Errorf("sampler: max %d (want 1), %d samples", maxOut, samples)
		}
	})
	if !ok {
		return
	}

	ok = t.Run("broken build fails HAProxy's check", func(t *testing.T) {
		haproxyCmd(t, ctx, l, "set server web/web2 state maint")
		install(t, ctx, l, "web2", "v3", v3)
		waitVersion(t, ctx, l, "web2", "v3")
		code, err := l.Command(ctx, "curl", "-s", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}", "http://10.200.0.12:8080/health").Output()
		if err != nil || string(code) != "500" {
			t.Errorf("broken /health: %q %v", code, err)
		}
		// The broken binary differs from the good one.
		a, _ := os.ReadFile(filepath.Join(l.Hosts[0].SrvDir, "app/releases/v2/bin/demoapp"))
		b, _ := os.ReadFile(filepath.Join(l.Hosts[1].SrvDir, "app/releases/v3/bin/demoapp"))
		if len(a) == 0 || bytes.Equal(a, b) {
			t.Error("broken and good demoapp binaries are identical")
		}
		haproxyCmd(t, ctx, l, "set server web/web2 state ready")
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var states map[string]string
		testwait.Within(t, testwait.Limit, "HAProxy to mark web2 with the broken build DOWN", func() bool {
			states, _ = l.ServerStates(wctx)
			return strings.HasPrefix(states["web2"], "DOWN")
		}, func() string { return "web2 is " + states["web2"] })
		// Roll back by hand.
		mustSSH(t, ctx, l, "web2", "ln -sfn releases/v2 /srv/app/current && /srv/app/current/bin/restart", nil)
		waitVersion(t, ctx, l, "web2", "v2")
		waitUp(t, ctx, l, "web2")
	})
	if !ok {
		return
	}

	ok = t.Run("KillSSHD leaves the app serving", func(t *testing.T) {
		// An open session dies with sshd.
		sess, err := l.SSH(ctx, "web1", "sleep 30")
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.Start(); err != nil {
			t.Fatal(err)
		}
		h, _ := l.Host("web1")
		testwait.For(t, "web1's sshd to run the session", func() bool {
			pids, _ := l.sshdPids(ctx, h)
			return len(pids) >= 2 // listener + the session's process
		})
		app := appPid(t, l, "web1")
		if err := l.KillSSHD("web1"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- sess.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				t.Error("the open session ended cleanly")
			}
		case <-time.After(5 * time.Second):
			t.Error("the open session survived KillSSHD")
			sess.Process.Kill()
		}
		if _, err := sshRun(ctx, l, "web1", "true", nil); err == nil {
			t.Error("ssh to web1 works after KillSSHD")
		}
		if !alive(app) {
			t.Error("the app died with sshd")
		}
		if v, err := l.ServedVersion(ctx, "web1"); err != nil || v != "v2" {
			t.Errorf("web1 serves %q %v", v, err)
		}
		if err := l.StartSSHD(ctx, "web1"); err != nil {
			t.Fatal(err)
		}
		// The new sshd has a fresh mount namespace on the same /srv; restart
		// still finds the app that outlived the old one.
		mustSSH(t, ctx, l, "web1", "cat /srv/marker && /srv/app/current/bin/restart", nil)
		waitVersion(t, ctx, l, "web1", "v2")
		if alive(app) {
			t.Error("restart after StartSSHD left the old app running")
		}
		if apps := demoapps(t, ctx, l, "web1"); len(apps) != 1 {
			t.Errorf("web1 runs apps %v", apps)
		}
	})
	if !ok {
		return
	}

	t.Run("Down leaves nothing behind", func(t *testing.T) {
		var pids []int
		for _, ns := range l.namespaces() {
			p, err := nsPids(ctx, ns)
			if err != nil {
				t.Fatal(err)
			}
			pids = append(pids, p...)
		}
		if len(pids) < 5 { // 2 sshd, 2 apps, haproxy
			t.Errorf("only %d processes in the lab before Down", len(pids))
		}
		start := time.Now()
		if err := l.Down(); err != nil {
			t.Fatal(err)
		}
		t.Logf("Down took %v", time.Since(start))
		assertGone(t, ctx, l.ID, l.Dir, pids)
		if err := l.Down(); err != nil {
			t.Errorf("second Down: %v", err)
		}
	})
}

// assertGone checks that no trace of lab id remains.
func assertGone(t *testing.T, ctx context.Context, id, dir string, pids []int) {
	t.Helper()
	names, err := labNamespaces(ctx, id)
	if err != nil || len(names) != 0 {
		t.Errorf("namespaces left: %v %v", names, err)
	}
	for _, p := range pids {
		if alive(p) {
			t.Errorf("process %d (%s) survived", p, procComm(p))
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab dir %s: %v", dir, err)
	}
	if _, err := os.Stat(registryPath(id)); !os.IsNotExist(err) {
		t.Errorf("registry entry: %v", err)
	}
}

// TestTwoLabsAndStaleCleanup runs two labs at once, fakes a crash of one's
// owner and checks that the next cleanup removes it, and only it.
func TestTwoLabsAndStaleCleanup(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var labs [2]*Lab
	var wg sync.WaitGroup
	for i := range labs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := Up(ctx, Options{Hosts: 1, Coordinators: 1 - i, Log: testLog{t}})
			if err != nil {
				t.Errorf("Up lab %d: %v", i, err)
				return
			}
			labs[i] = l
			t.Cleanup(func() { l.Down() })
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	live, stale := labs[0], labs[1]
	for _, l := range labs {
		if out := mustSSH(t, ctx, l, "web1", "hostname", nil); out != "web1" {
			t.Errorf("lab %s: hostname %q", l.ID, out)
		}
	}
	// Each lab has its own host keys: one lab's known_hosts fails on the other.
	args := append(live.sshArgs(stale.KnownHosts), "root@10.200.0.11", "true")
	if err := live.Command(ctx, "ssh", args...).Run(); err == nil {
		t.Error("lab A accepted lab B's host key")
	}

	// A process of the stale lab that is not one of its daemons.
	sleeper := stale.Command(ctx, "sleep", "300")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	go sleeper.Wait()
	var pids []int
	for _, ns := range stale.namespaces() {
		p, _ := nsPids(ctx, ns)
		pids = append(pids, p...)
	}

	// The stale lab's owner: a process that has exited.
	owner := exec.Command("sleep", "60")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	ownerStart := processStartTime(owner.Process.Pid)
	owner.Process.Kill()
	owner.Wait()
	if err := stale.setOwner(owner.Process.Pid, ownerStart); err != nil {
		t.Fatal(err)
	}

	// Other labs may share the machine (other tests, other people): an error
	// about one of them is not this test's business.
	removed, err := CleanStale(ctx, testLog{t})
	if err != nil {
		t.Logf("CleanStale: %v", err)
	}
	if !slices.Contains(removed, stale.ID) || slices.Contains(removed, live.ID) {
		t.Fatalf("CleanStale removed %v; stale %s, live %s", removed, stale.ID, live.ID)
	}
	assertGone(t, ctx, stale.ID, stale.Dir, pids)
	if alive(sleeper.Process.Pid) {
		t.Error("the stale lab's sleeper survived")
	}
	if out := mustSSH(t, ctx, live, "web1", "hostname", nil); out != "web1" {
		t.Errorf("the live lab broke: %q", out)
	}

	// The live lab has a coordinator namespace: something listening there is
	// reachable from the control namespace.
	if len(live.Coordinators) != 1 || live.Coordinators[0].Address != "10.200.0.5" {
		t.Fatalf("coordinators = %+v", live.Coordinators)
	}
	bin, err := buildDemoapp(ctx, t.TempDir(), Build{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := live.CommandIn(ctx, "c1", bin, "--listen", "10.200.0.5:9000", "--version", "coord")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	go srv.Wait()
	var out []byte
	testwait.Within(t, testwait.Limit, "the coordinator namespace to answer", func() bool {
		out, err = live.Command(ctx, "curl", "-sS", "--noproxy", "*", "-m", "1", "http://10.200.0.5:9000/").Output()
		return err == nil && strings.HasPrefix(string(out), "coord ")
	}, func() string { return fmt.Sprintf("last answer %q %v", out, err) })

	// A detached lab is not stale; Destroy removes it.
	if err := live.Detach(); err != nil {
		t.Fatal(err)
	}
	if removed, _ := CleanStale(ctx, nil); slices.Contains(removed, live.ID) {
		t.Error("CleanStale removed a detached lab")
	}
	if err := Destroy(ctx, live.ID); err != nil {
		t.Fatal(err)
	}
	assertGone(t, ctx, live.ID, live.Dir, []int{srv.Process.Pid})
	if err := Destroy(ctx, live.ID); err == nil {
		t.Error("Destroy of a removed lab: no error")
	}
}

func TestUpFailureCleansUp(t *testing.T) {
	requireLab(t)
	if _, err := Up(t.Context(), Options{Hosts: 999}); err == nil {
		t.Fatal("Up with 99 hosts: no error")
	}
	// HAProxy cannot create its socket (a directory is in the way): Up fails
	// after the namespaces and sshd exist, and must remove them.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "haproxy.sock"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Up(t.Context(), Options{Hosts: 1, Dir: dir, Log: testLog{t}})
	if err == nil {
		t.Fatal("Up: no error")
	}
	t.Logf("Up failed as expected: %v", err)
	b, rerr := os.ReadFile(filepath.Join(dir, labFile))
	if rerr != nil {
		t.Fatal(rerr)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	names, _ := labNamespaces(t.Context(), rec.ID)
	if len(names) != 0 {
		t.Errorf("namespaces left: %v", names)
	}
	if _, err := os.Stat(registryPath(rec.ID)); !os.IsNotExist(err) {
		t.Errorf("registry entry left: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the caller's Dir was removed: %v", err)
	}
}
