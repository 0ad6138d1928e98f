package orchestrator

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/plans"
)

func TestRecordedOutput(t *testing.T) {
	long := strings.Repeat("x", 3000)
	var many []string
	for i := range 30 {
		many = append(many, fmt.Sprintf("line %d", i))
	}
	tests := []struct {
		name    string
		in      string
		secrets []string
		want    string
	}{
		{"short output unchanged", "boom\n", nil, "boom\n"},
		{"listed secret", "MY_VAR=abc other=1\n", []string{"my_var"}, "MY_VAR=[redacted] other=1\n"},
		{"conventional names", `DB_PASSWORD="p w" api_key: k1 GITHUB_TOKEN=t Error: x`, nil,
			`DB_PASSWORD=[redacted] api_key: [redacted] GITHUB_TOKEN=[redacted] Error: x`},
		{"last 20 lines", strings.Join(many, "\n") + "\n", nil,
			"[... 70 bytes cut]\n" + strings.Join(many[10:], "\n") + "\n"},
		{"last 2 KiB", long, nil, "[... 952 bytes cut]\n" + long[952:]},
		{"redacted before the cut", "SECRET=" + long, nil, "SECRET=[redacted]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := recordedOutput(tc.in, tc.secrets); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// chattyHost fails hooks that say "exit 9" after printing much output
// with secrets in it.
type chattyHost struct{ *fakeHost }

func (h chattyHost) Run(ctx context.Context, cmd string, out io.Writer) error {
	if !strings.Contains(cmd, "exit 9") {
		return h.fakeHost.Run(ctx, cmd, out)
	}
	for i := range 500 {
		fmt.Fprintf(out, "migrating row %d\n", i)
	}
	fmt.Fprintln(out, "connect with API_TOKEN=tok-s3cr3t DB_PASS=hunter2 failed")
	return fmt.Errorf("exit 9: %w", errRemote)
}

type chattyFleet struct{ *fleet }

func (f chattyFleet) Connect(ctx context.Context, h plans.Host) (Host, error) {
	c, err := f.fleet.Connect(ctx, h)
	if err != nil {
		return nil, err
	}
	return chattyHost{c.(*fakeHost)}, nil
}

// A failed command's output reaches the replicated events only as a
// bounded, redacted tail (security.md, finding 11).
func TestFailedOutputIsBoundedAndRedacted(t *testing.T) {
	f := newFleet(hostsNamed(1)...)
	h := newHarness(t, f)
	h.engine.d.Connector = func(*plans.Plan) (Connector, error) { return chattyFleet{f}, nil }
	p := h.plan("v1", plans.Size{N: 1}, 0)
	p.Secrets = []string{"DB_PASS"}
	p.Hooks.AfterInstall = []string{"DB_PASS=hunter2 ./migrate; exit 9"}
	if _, st, _ := h.deploy(p, nil); st == deploy.StateSucceeded {
		t.Fatal("the failing hook did not fail the deployment")
	}
	evs, _ := h.store.Events("", 0)
	var failed *deploy.Event
	for i, ev := range evs {
		if ev.Stage == deploy.StageFailed {
			failed = &evs[i]
			break
		}
	}
	if failed == nil {
		t.Fatalf("no failed stage among %d events", len(evs))
	}
	for _, secret := range []string{"tok-s3cr3t", "hunter2"} {
		if strings.Contains(failed.Output, secret) || strings.Contains(failed.Error, secret) {
			t.Errorf("%q in the replicated event:\nerror: %s\noutput: %s", secret, failed.Error, failed.Output)
		}
	}
	if len(failed.Output) > 2<<10+64 || strings.Count(failed.Output, "\n") > 21 {
		t.Errorf("output of %d bytes, %d lines: not bounded", len(failed.Output), strings.Count(failed.Output, "\n"))
	}
	if !strings.Contains(failed.Output, "API_TOKEN=[redacted] DB_PASS=[redacted] failed") {
		t.Errorf("the end of the output, redacted, is missing:\n%s", failed.Output)
	}
}

// streamsHost prints to both streams in hooks that say "exit 7", then
// fails; it writes stderr apart when out offers it, as the SSH transport does.
type streamsHost struct{ *fakeHost }

func (h streamsHost) Run(ctx context.Context, cmd string, out io.Writer) error {
	if !strings.Contains(cmd, "exit 7") {
		return h.fakeHost.Run(ctx, cmd, out)
	}
	errw := out
	if s, ok := out.(interface{ Stderr() io.Writer }); ok {
		errw = s.Stderr()
	}
	fmt.Fprintln(out, "starting app")
	fmt.Fprintln(errw, "fatal: cannot bind :8080")
	fmt.Fprint(out, "token is s3cr3t-value (no newline)")
	return fmt.Errorf("exit 7: %w", errRemote)
}

type streamsFleet struct{ *fleet }

func (f streamsFleet) Connect(ctx context.Context, h plans.Host) (Host, error) {
	c, err := f.fleet.Connect(ctx, h)
	if err != nil {
		return nil, err
	}
	return streamsHost{c.(*fakeHost)}, nil
}

// Every command's output is recorded with the deployment, stdout and
// stderr apart, each line with its time, secret values blanked; the
// failure names the command and carries its last lines with times.
func TestCommandOutputIsRecorded(t *testing.T) {
	t.Setenv("APP_KEY", "s3cr3t-value")
	f := newFleet(hostsNamed(1)...)
	h := newHarness(t, f)
	h.engine.d.Connector = func(*plans.Plan) (Connector, error) { return streamsFleet{f}, nil }
	p := h.plan("v1", plans.Size{N: 1}, 0)
	p.Secrets = []string{"APP_KEY"}
	p.Hooks.AfterActivate = []string{"./start; exit 7"}
	id, st, _ := h.deploy(p, nil)
	if st == deploy.StateSucceeded {
		t.Fatal("the failing hook did not fail the deployment")
	}
	host := p.Hosts[0].Name
	page, err := h.store.Logs(deploy.LogQuery{ID: id, Host: host, Stage: deploy.StageActivate})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ln := range page.Lines {
		if ln.At.IsZero() || ln.Host != host || ln.Command != "hook ./start; exit 7" || ln.Phase != deploy.PhaseRollout {
			t.Errorf("line %+v: no time, host or command", ln)
		}
		got = append(got, string(ln.Stream)+": "+ln.Text)
	}
	want := []string{"stdout: starting app", "stderr: fatal: cannot bind :8080", "stdout: token is [redacted] (no newline)"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("recorded lines\n%q\nwant\n%q", got, want)
	}
	d, err := h.store.Deployment(id)
	if err != nil {
		t.Fatal(err)
	}
	hp := d.Hosts[host]
	evs, _ := h.store.Events(id, 0)
	var failed *deploy.Event
	for i, ev := range evs {
		if ev.Stage == deploy.StageFailed && ev.Phase == deploy.PhaseRollout {
			failed = &evs[i]
		}
	}
	if failed == nil {
		t.Fatalf("no failed event; host error %q", hp.Error)
	}
	if !strings.Contains(failed.Error, "hook ./start; exit 7") {
		t.Errorf("the failure does not name the command: %s", failed.Error)
	}
	if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3}Z stderr fatal: cannot bind :8080$`).MatchString(failed.Output) ||
		strings.Contains(failed.Output, "s3cr3t") {
		t.Errorf("the failure's last lines lack times or streams, or hold the secret:\n%s", failed.Output)
	}
}

// applyRecorder is a Store that keeps the commands applied to it.
type applyRecorder struct {
	Store
	mu   sync.Mutex
	cmds []deploy.Command
}

func (a *applyRecorder) Apply(_ context.Context, c deploy.Command) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cmds = append(a.cmds, c)
	return nil
}

// The logbook bounds what a chatty command queues between two flushes
// like the store bounds what it keeps, and splits a flush into appends the
// store accepts.
func TestLogbookBounds(t *testing.T) {
	st := &applyRecorder{}
	b := newLogbook(st, "d1", time.Now)
	line := strings.Repeat("x", 99)
	for range 2000 { // 200 KB on stdout
		b.add("web1", deploy.StageActivate, deploy.PhaseRollout, "restart", deploy.LogLine{Stream: deploy.Stdout, Text: line})
	}
	for range 5000 { // many short stderr lines
		b.add("web2", deploy.StageActivate, deploy.PhaseRollback, "restart", deploy.LogLine{Stream: deploy.Stderr, Text: "e"})
	}
	b.flush(context.Background())
	var out, errs, appends int
	for _, c := range st.cmds {
		a := c.(*deploy.AppendLog)
		appends++
		n := 0
		for _, ch := range a.Chunks {
			n += len(ch.Lines)
			for _, ln := range ch.Lines {
				if ln.Stream == deploy.Stdout {
					out += len(ln.Text)
				} else {
					errs++
				}
			}
		}
		if n > deploy.MaxLogAppendLines {
			t.Errorf("an append of %d lines", n)
		}
	}
	if out > deploy.MaxLogStreamBytes || out < deploy.MaxLogStreamBytes-100 {
		t.Errorf("%d bytes of stdout sent, want the last %d", out, deploy.MaxLogStreamBytes)
	}
	if errs != 5000 || appends != 2 {
		t.Errorf("%d stderr lines in %d appends, want 5000 in 2", errs, appends)
	}
	b.flush(context.Background())
	if len(st.cmds) != appends {
		t.Errorf("an empty flush applied something")
	}
}
