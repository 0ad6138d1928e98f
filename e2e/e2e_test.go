// Package e2e drives the real drover binary against the lab: network
// namespaces with real sshd hosts, a real HAProxy and real traffic.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/notify"
	"github.com/drover-dev/drover/internal/syncbuf"
	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
)

var droverBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "drover-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	droverBin = filepath.Join(dir, "drover")
	for bin, pkg := range map[string]string{droverBin: "../cmd/drover", filepath.Join(dir, "drover-lab"): "../cmd/drover-lab"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	os.Setenv("DROVER_LAB_BIN", filepath.Join(dir, "drover-lab"))
	return m.Run()
}

// needLab skips on a laptop without root, never in CI.
func needLab(t *testing.T) {
	t.Helper()
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("end-to-end lab test: not in -short mode")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the lab needs root (network namespaces); CI runs as root")
		}
		t.Skip("end-to-end lab test: needs root for network namespaces (run: sudo make test)")
	}
}

// session is an operator at the lab's control node with a drover data dir.
type session struct {
	t       *testing.T
	lab     *lab.Lab
	dataDir string
	arts    map[string]string
}

func newSession(t *testing.T, hosts int) *session {
	t.Helper()
	return newSessionWith(t, lab.Options{Hosts: hosts})
}

func newSessionWith(t *testing.T, opts lab.Options) *session {
	t.Helper()
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts.Log = testWriter{t}
	l, err := lab.Up(ctx, opts)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	s := &session{t: t, lab: l, dataDir: filepath.Join(l.Dir, "drover-state"), arts: map[string]string{}}
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// plan writes a plan for version (broken: its health check fails).
func (s *session) plan(version string, broken bool, batch string, extra ...func(*lab.PlanParams)) string {
	s.t.Helper()
	key := fmt.Sprintf("%s-%v", version, broken)
	art, ok := s.arts[key]
	if !ok {
		var err error
		art, err = lab.BuildArtifact(context.Background(), filepath.Join(s.lab.Dir, "artifacts"), version, broken)
		if err != nil {
			s.t.Fatalf("build artifact %s: %v", version, err)
		}
		s.arts[key] = art
	}
	p := lab.PlanParams{Version: version, Artifact: art, Batch: batch}
	for _, f := range extra {
		f(&p)
	}
	path := filepath.Join(s.lab.Dir, "plan-"+version+".yaml")
	if err := s.lab.WritePlan(path, p); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// drover is one run of the real binary in the control namespace.
type drover struct {
	cmd    *exec.Cmd
	stdout *eventTap
	stderr syncbuf.Buffer // read while drover runs
	done   chan struct{}
	err    error
	exited time.Time // when Wait returned, set before done closes
}

// start runs `drover ARGS --data-dir D --output json` in the lab.
func (s *session) start(args ...string) *drover {
	s.t.Helper()
	return s.launch(nil, append(args, "--data-dir", s.dataDir, "--output", "json")...)
}

// launch runs drover with args, and env added to this environment, in the
// lab's control namespace.
func (s *session) launch(env []string, args ...string) *drover {
	s.t.Helper()
	d := &drover{stdout: newEventTap(), done: make(chan struct{})}
	d.stdout.stderr = &d.stderr
	d.cmd = s.lab.Command(context.Background(), droverBin, args...)
	if env != nil {
		d.cmd.Env = append(os.Environ(), env...)
	}
	d.cmd.Stdout = d.stdout
	d.cmd.Stderr = &d.stderr
	if err := d.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		d.exited = time.Now()
		d.stdout.w.Close()
		close(d.done)
	}()
	return d
}

// wait returns drover's exit code.
func (d *drover) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(4 * time.Minute):
		d.cmd.Process.Kill()
		<-d.done
		t.Fatalf("drover did not finish; output:\n%s\nstderr:\n%s", d.stdout.text(), d.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(d.err, &ee) {
		return ee.ExitCode()
	}
	if d.err != nil {
		t.Fatal(d.err)
	}
	return 0
}

func (s *session) run(args ...string) (int, *drover) {
	s.t.Helper()
	d := s.start(args...)
	code := d.wait(s.t)
	s.t.Logf("drover %s: exit %d\nstderr: %s", strings.Join(args, " "), code, d.stderr.String())
	return code, d
}

// eventTap collects drover's JSON events and lets a test wait for one.
type eventTap struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	events []orchestrator.Event
	w      *io.PipeWriter
	added  notify.Signal // fires at each new event
	eof    chan struct{} // closed once the writer closed and every event is in
	stderr fmt.Stringer  // what the writing process said, for failures
}

func newEventTap() *eventTap {
	pr, pw := io.Pipe()
	e := &eventTap{w: pw, eof: make(chan struct{})}
	go func() {
		defer close(e.eof)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev orchestrator.Event
			if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Kind == "" {
				continue
			}
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.added.Fire()
			e.mu.Unlock()
		}
	}()
	return e
}

func (e *eventTap) Write(p []byte) (int, error) {
	e.mu.Lock()
	e.buf.Write(p)
	e.mu.Unlock()
	return e.w.Write(p)
}

func (e *eventTap) text() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.buf.String()
}

// waitFor blocks until an event matches.
func (e *eventTap) waitFor(t *testing.T, what string, match func(orchestrator.Event) bool) orchestrator.Event {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	seen := 0
	for {
		e.mu.Lock()
		evs, ch := e.events[seen:], e.added.C()
		e.mu.Unlock()
		for _, ev := range evs {
			seen++
			if match(ev) {
				return ev
			}
		}
		select {
		case <-ch:
		case <-e.eof:
			// Every event is in: one more look, then fail.
			e.mu.Lock()
			evs := e.events[seen:]
			e.mu.Unlock()
			for _, ev := range evs {
				if match(ev) {
					return ev
				}
			}
			t.Fatalf("no event %s: drover exited; output:\n%s\nstderr:\n%s", what, e.text(), e.stderr)
		case <-deadline:
			t.Fatalf("no event %s; output:\n%s", what, e.text())
		}
	}
}

func (e *eventTap) all() []orchestrator.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]orchestrator.Event(nil), e.events...)
}

// versions returns what each host serves.
func (s *session) versions() map[string]string {
	s.t.Helper()
	out := map[string]string{}
	for _, h := range s.lab.HostNames() {
		v, err := s.lab.ServedVersion(context.Background(), h)
		if err != nil {
			out[h] = "error: " + err.Error()
			continue
		}
		out[h] = v
	}
	return out
}

func (s *session) expectAllOn(version string) {
	s.t.Helper()
	for h, v := range s.versions() {
		if v != version {
			s.t.Errorf("%s serves %q, want %q", h, v, version)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, out, err := s.lab.OutOfRotation(ctx); err != nil || n != 0 {
		s.t.Errorf("out of rotation: %d %v (err %v)", n, out, err)
	}
}

// underLoad runs fn with HTTP load through every HAProxy instance and a
// sampler of their runtime APIs, and checks the invariants users care
// about: no failed request through any instance, never more than maxOut
// servers out of rotation on any of them. It returns the load seen through
// the first instance.
func (s *session) underLoad(maxOut int, fn func()) (lab.Result, int) {
	s.t.Helper()
	var loads []*lab.Load
	for _, inst := range s.lab.HAProxies {
		ld, err := s.lab.StartLoadAt(context.Background(), inst.FrontendURL, 4)
		if err != nil {
			s.t.Fatal(err)
		}
		loads = append(loads, ld)
	}
	smp := s.lab.StartSampler(20 * time.Millisecond)
	fn()
	worst, samples := smp.Stop()
	var first lab.Result
	for i, ld := range loads {
		res, err := ld.Stop()
		if err != nil {
			s.t.Fatal(err)
		}
		name := s.lab.HAProxies[i].Name
		s.t.Logf("load through %s: %d requests, %d failed, by version %v", name, res.Requests, res.Failures, res.ByVersion)
		if res.Requests == 0 {
			s.t.Errorf("the load generator sent no request through %s", name)
		}
		if res.Failures != 0 {
			s.t.Errorf("%d failed requests through %s: %v", res.Failures, name, res.FirstErrors)
		}
		if i == 0 {
			first = res
		}
	}
	s.t.Logf("sampler (every HAProxy instance): %d samples, max %d out of rotation", samples, worst)
	if samples < 10 {
		s.t.Errorf("sampler took only %d samples", samples)
	}
	if worst > maxOut {
		s.t.Errorf("up to %d servers out of rotation, want <= %d", worst, maxOut)
	}
	return first, worst
}

// TestRollingDeploy is the spine: v1, then v2 under load, then a broken v3
// that rolls back by itself.
func TestRollingDeploy(t *testing.T) {
	s := newSession(t, 6)

	if code, d := s.run("deploy", s.plan("v1", false, "2")); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	s.expectAllOn("v1")

	t.Run("v2 under load", func(t *testing.T) {
		s.t = t
		before := acceptedLogins(t, s.lab)
		s.underLoad(2, func() {
			if code, d := s.run("deploy", s.plan("v2", false, "2")); code != 0 {
				t.Fatalf("deploy v2: exit %d\n%s", code, d.stdout.text())
			}
		})
		s.expectAllOn("v2")
		// One SSH handshake per host per deploy, as each sshd logged it.
		for h, n := range acceptedLogins(t, s.lab) {
			if n-before[h] != 1 {
				t.Errorf("%s: %d SSH logins during the deploy, want 1", h, n-before[h])
			}
		}
	})

	t.Run("broken v3 rolls back", func(t *testing.T) {
		s.t = t
		s.underLoad(2, func() {
			code, d := s.run("deploy", s.plan("v3", true, "2"))
			if code != 3 {
				t.Fatalf("deploy broken v3: exit %d, want 3\n%s", code, d.stdout.text())
			}
			// It stopped in the first batch: hosts of later batches were never touched.
			for _, ev := range d.stdout.all() {
				if ev.Kind == orchestrator.EventStage && ev.Version == "v3" && (ev.Host == "web3" || ev.Host == "web5") {
					t.Errorf("%s got v3 after the first batch failed", ev.Host)
				}
			}
		})
		s.expectAllOn("v2")
	})

	t.Run("status and history tell the story", func(t *testing.T) {
		s.t = t
		out, err := s.lab.Command(context.Background(), droverBin, "history", "--data-dir", s.dataDir).CombinedOutput()
		if err != nil {
			t.Fatalf("history: %v\n%s", err, out)
		}
		for _, want := range []string{"rolled_back", "succeeded", "v3", "v2", "v1"} {
			if !bytes.Contains(out, []byte(want)) {
				t.Errorf("history lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("operator rollback of v2", func(t *testing.T) {
		s.t = t
		s.underLoad(2, func() {
			var v2 string
			out, _ := s.lab.Command(context.Background(), droverBin, "history", "--data-dir", s.dataDir, "-o", "json").Output()
			var history []struct{ ID, Version, State string }
			if err := json.Unmarshal(out, &history); err != nil {
				t.Fatalf("history -o json: %v\n%s", err, out)
			}
			for _, d := range history {
				if d.Version == "v2" && d.State == "succeeded" {
					v2 = d.ID
				}
			}
			if v2 == "" {
				t.Fatalf("no succeeded v2 in history:\n%s", out)
			}
			if code, d := s.run("rollback", v2); code != 0 {
				t.Fatalf("rollback: exit %d\n%s", code, d.stdout.text())
			}
		})
		s.expectAllOn("v1")
	})
}

// TestUnknownHostKeyRefusesBeforeTouchingAnything: a host whose key is not
// in known_hosts stops the deploy in preflight.
func TestUnknownHostKeyRefusesBeforeTouchingAnything(t *testing.T) {
	s := newSession(t, 3)
	if code, _ := s.run("deploy", s.plan("v1", false, "1")); code != 0 {
		t.Fatalf("deploy v1: exit %d", code)
	}
	// Forget web2's key.
	kh, err := os.ReadFile(s.lab.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := s.lab.Host("web2")
	var kept []string
	for _, line := range strings.Split(string(kh), "\n") {
		if !strings.HasPrefix(line, h2.Address+" ") && line != "" {
			kept = append(kept, line)
		}
	}
	if err := os.WriteFile(s.lab.KnownHosts, []byte(strings.Join(kept, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, d := s.run("deploy", s.plan("v2", false, "1"))
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, d.stdout.text())
	}
	if !strings.Contains(d.stderr.String(), "web2") || !strings.Contains(strings.ToLower(d.stderr.String()), "host key") {
		t.Errorf("the error should name web2 and its host key:\n%s", d.stderr.String())
	}
	for _, ev := range d.stdout.all() {
		if ev.Kind == orchestrator.EventStage {
			t.Errorf("a stage ran: %+v", ev)
		}
	}
	s.expectAllOn("v1")
	s.refusedInHistory(t, "v2")
}

// refusedInHistory checks that the deployment of version, refused at
// preflight, is hidden from `history`, listed as refused by `history --all`
// and marked "refused" in `history -o json`.
func (s *session) refusedInHistory(t *testing.T, version string) {
	t.Helper()
	history := func(args ...string) string {
		out, err := s.lab.Command(context.Background(), droverBin, append([]string{"history", "--data-dir", s.dataDir}, args...)...).Output()
		if err != nil {
			t.Fatalf("history %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	row := regexp.MustCompile(`(?m)^\S+ +deploy +\S+ +` + regexp.QuoteMeta(version) + ` +(\S+) `)
	if m := row.FindStringSubmatch(history()); m != nil {
		t.Errorf("history lists the refused deployment of %s (as %s)", version, m[1])
	}
	if m := row.FindStringSubmatch(history("--all")); m == nil || m[1] != "refused" {
		t.Errorf("history --all: the deployment of %s is %v, want listed as refused", version, m)
	}
	raw := history("-o", "json")
	checkJSON(t, "deployment", []byte(raw), true)
	var ds []struct {
		Version, State string
		Refused        bool
	}
	if err := json.Unmarshal([]byte(raw), &ds); err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Version == version && (!d.Refused || d.State != "failed") {
			t.Errorf("history -o json: %+v, want state failed, refused", d)
		}
	}
}

// TestSSHDKilledMidRollout: one host's sshd dies while the rollout runs.
func TestSSHDKilledMidRollout(t *testing.T) {
	s := newSession(t, 4)
	if code, _ := s.run("deploy", s.plan("v1", false, "2")); code != 0 {
		t.Fatalf("deploy v1: exit %d", code)
	}
	var d *drover
	var code int
	// A host that cannot be rolled back stays out of rotation (its state is
	// unknown): then one more than the batch may be out.
	_, worst := s.underLoad(3, func() {
		d = s.start("deploy", s.plan("v2", false, "2"))
		d.stdout.waitFor(t, "web3 drained", func(ev orchestrator.Event) bool {
			return ev.Kind == orchestrator.EventStage && ev.Host == "web3" && ev.Stage == "install"
		})
		if err := s.lab.KillSSHD("web3"); err != nil {
			t.Fatal(err)
		}
		code = d.wait(t)
	})
	t.Logf("output:\n%s\nstderr: %s", d.stdout.text(), d.stderr.String())
	if code != 3 && code != 1 {
		t.Fatalf("exit %d, want 3 (rolled back) or 1 (web3 could not be rolled back)", code)
	}
	if code == 3 && worst > 2 {
		t.Errorf("rolled back cleanly but %d servers were out of rotation at once, want <= 2", worst)
	}
	if code == 1 && !strings.Contains(d.stderr.String(), "web3") {
		t.Errorf("exit 1 must name the host that could not be rolled back:\n%s", d.stderr.String())
	}
	v := s.versions()
	for _, h := range []string{"web1", "web2", "web4"} {
		if v[h] != "v1" {
			t.Errorf("%s serves %q, want v1 after rollback", h, v[h])
		}
	}
}

// TestInterruptThenResume: Ctrl-C pauses at a safe point; resume finishes.
func TestInterruptThenResume(t *testing.T) {
	s := newSession(t, 6)
	if code, _ := s.run("deploy", s.plan("v1", false, "2")); code != 0 {
		t.Fatalf("deploy v1: exit %d", code)
	}
	s.underLoad(2, func() {
		d := s.start("deploy", s.plan("v2", false, "2"))
		d.stdout.waitFor(t, "batch 2 starts", func(ev orchestrator.Event) bool {
			return ev.Kind == orchestrator.EventStage && ev.Host == "web3"
		})
		if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := d.wait(t); code != 130 {
			t.Fatalf("after Ctrl-C: exit %d, want 130 (paused)\n%s\n%s", code, d.stdout.text(), d.stderr.String())
		}
		paused := s.versions()
		if paused["web3"] != "v2" || paused["web6"] != "v1" {
			t.Errorf("while paused: %v; want the batch in flight finished and the next not started", paused)
		}
		if code, d := s.run("resume"); code != 0 {
			t.Fatalf("resume: exit %d\n%s", code, d.stdout.text())
		}
	})
	s.expectAllOn("v2")
}
