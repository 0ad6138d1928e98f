package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/orchestrator"
)

// fleetOf is a deployment of n hosts named web1.. in batches of size b,
// from v1 to v2.
func fleetOf(n, b int) deploy.Deployment {
	d := deploy.Deployment{ID: "d1", Name: "web", Version: "v2", Created: time.Now(), Hosts: map[string]*deploy.HostProgress{}}
	for i := 1; i <= n; i++ {
		h := fmt.Sprintf("web%d", i)
		if (i-1)%b == 0 {
			d.Batches = append(d.Batches, nil)
		}
		d.Batches[len(d.Batches)-1] = append(d.Batches[len(d.Batches)-1], h)
		d.Hosts[h] = &deploy.HostProgress{Name: h, Stage: deploy.StagePending, FromCurrent: "v1", Target: "v2"}
	}
	return d
}

func TestLiveFrameFits(t *testing.T) {
	for _, tc := range []struct {
		name          string
		hosts, batch  int
		width, height int
		atWork        int // hosts of the first batch put in a stage
		whole         bool
		want          []string
	}{
		{name: "8 hosts in a big terminal: the whole table", hosts: 8, batch: 2, width: 120, height: 40, atWork: 2, whole: true,
			want: []string{"batch 1/4 · 0/8 hosts done · v1 → v2", "» batch 1  web1", "  batch 4  web8"}},
		{name: "200 hosts at 80x24", hosts: 200, batch: 40, width: 80, height: 24, atWork: 40,
			want: []string{"batch 1/5 · 0/200 hosts done · v1 → v2", "» batch 1  web1 ", "  … 20 more at work or failed", "  160 waiting"}},
		{name: "200 hosts, a batch that fits", hosts: 200, batch: 10, width: 80, height: 24, atWork: 10,
			want: []string{"» batch 1  web10", "  190 waiting"}},
		{name: "a tiny terminal", hosts: 50, batch: 10, width: 30, height: 6, atWork: 10,
			want: []string{"batch 1/5 · 0/50 hosts done …", "  … 8 more at work or failed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := newView(&bytes.Buffer{}, "text")
			v.begin(fleetOf(tc.hosts, tc.batch))
			v.event(orchestrator.Event{Kind: orchestrator.EventBatch, Batch: 1, Batches: (tc.hosts + tc.batch - 1) / tc.batch})
			for _, h := range v.order[:tc.atWork] {
				v.event(orchestrator.Event{Kind: orchestrator.EventStage, Host: h, Stage: deploy.StageInstall, Version: "v2"})
			}
			lines := liveFrame(v.sum, v.order, v.batchOf, v.rows, time.Now(), tc.width, tc.height, false)
			if len(lines) > tc.height-1 {
				t.Errorf("%d lines for %d rows", len(lines), tc.height)
			}
			for _, l := range lines {
				if n := utf8.RuneCountInString(l); n >= tc.width {
					t.Errorf("line of %d columns in %d: %q", n, tc.width, l)
				}
			}
			if tc.whole && len(lines) != tc.hosts+1 {
				t.Errorf("%d lines, want the summary and every host", len(lines))
			}
			text := strings.Join(lines, "\n")
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("frame lacks %q:\n%s", w, text)
				}
			}
		})
	}
}

// liveViewHelper is set in the process the tmux test starts (this test
// binary): instead of the tests, it plays a 200-host rollout through the
// live view on its terminal.
const liveViewHelper = "DROVER_TEST_LIVE_VIEW"

func TestMain(m *testing.M) {
	if os.Getenv(liveViewHelper) == "1" {
		if err := playLiveView(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func playLiveView() error {
	v, err := newView(os.Stdout, "live")
	if err != nil {
		return err
	}
	d := fleetOf(200, 40)
	v.begin(d)
	for b, hosts := range d.Batches {
		v.event(orchestrator.Event{Kind: orchestrator.EventBatch, Batch: b + 1, Batches: len(d.Batches), Hosts: hosts})
		for _, st := range []deploy.Stage{deploy.StageDrain, deploy.StageInstall, deploy.StageActivate, deploy.StageVerify} {
			for _, h := range hosts {
				v.event(orchestrator.Event{Kind: orchestrator.EventStage, Host: h, Stage: st, Version: "v2"})
			}
			// The stage's work: the view redraws meanwhile (its ticker
			// too; these redraws make sure each stage is drawn).
			for range 3 {
				v.mu.Lock()
				v.redraw()
				v.mu.Unlock()
			}
		}
		for _, h := range hosts {
			if h == "web57" {
				v.event(orchestrator.Event{Kind: orchestrator.EventHostFailed, Host: h, Error: "verify: GET http://10.200.0.57:8080/health: status 500, want 200"})
				d.Hosts[h].Stage = deploy.StageFailed
				continue
			}
			v.event(orchestrator.Event{Kind: orchestrator.EventHostDone, Host: h, Version: "v2"})
			d.Hosts[h].Stage = deploy.StageDone
		}
	}
	d.State, d.Ended = deploy.StateFailed, time.Now()
	v.end(d)
	return nil
}

// The live view of a 200-host rollout in an 80x24 terminal (tmux) redraws
// in place: the scrollback holds one frame (the last), no line wraps, and
// what was printed above the frame (a failure) stays.
func TestLiveViewInTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and tmux is missing (scripts/deps.sh installs it)")
		}
		t.Skip("tmux is not installed")
	}
	sock := fmt.Sprintf("drover-test-%d", os.Getpid())
	tmux := func(args ...string) (string, error) {
		out, err := exec.Command("tmux", append([]string{"-L", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { tmux("kill-server") })
	cmd := fmt.Sprintf("env %s=1 %q; echo HELPER-EXIT=$?; sleep 60", liveViewHelper, os.Args[0])
	if out, err := tmux("-f", "/dev/null", "new-session", "-d", "-s", "v", "-x", "80", "-y", "24", cmd); err != nil {
		t.Fatalf("tmux: %v: %s", err, out)
	}
	var pane string
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(pane, "HELPER-EXIT=") {
		if time.Now().After(deadline) {
			t.Fatalf("the helper did not finish:\n%s", pane)
		}
		select {
		case <-t.Context().Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		var err error
		// -S - -E -: the scrollback and the screen; -J joins wrapped lines.
		if pane, err = tmux("capture-pane", "-p", "-J", "-S", "-", "-E", "-", "-t", "v"); err != nil {
			t.Fatalf("capture-pane: %v: %s", err, pane)
		}
	}
	if !strings.Contains(pane, "HELPER-EXIT=0") {
		t.Fatalf("the helper failed:\n%s", pane)
	}
	if n := strings.Count(pane, "hosts done"); n != 1 {
		t.Errorf("%d frames in the scrollback, want 1 (the last):\n%s", n, pane)
	}
	// The frame's lines never wrap (a message printed above it may).
	for _, l := range strings.Split(pane, "\n") {
		l = strings.TrimRight(l, " ")
		frame := strings.Contains(l, "hosts done") || strings.Contains(l, " batch ") || strings.HasPrefix(l, "  ✓")
		if frame && utf8.RuneCountInString(l) > 80 {
			t.Errorf("a line of the frame wrapped (%d columns): %q", utf8.RuneCountInString(l), l)
		}
	}
	for _, want := range []string{
		"web57      FAILED: verify: GET http://10.200.0.57:8080/health", // printed above the frame
		"batch 5/5 · 199/200 hosts done · 1 failed · v1 → v2",
		"✓ 199 done · ✗ 1 failed",
		"deployment d1 failed after",
		"199: web1 web2 web3 web4 web5 web6 web7 web8 web9 web10 web11 web12 ... and 187 more",
	} {
		if !strings.Contains(pane, want) {
			t.Errorf("the terminal lacks %q:\n%s", want, pane)
		}
	}
	if testing.Verbose() {
		t.Logf("the terminal at the end:\n%s", pane)
	}
}

// During verify a host's row shows its last probe; text output stays quiet.
func TestLiveRowShowsLastProbe(t *testing.T) {
	var out bytes.Buffer
	v, _ := newView(&out, "text")
	v.begin(fleetOf(2, 1))
	v.event(orchestrator.Event{Kind: orchestrator.EventStage, Host: "web1", Stage: deploy.StageActivate, Version: "v2"})
	v.event(orchestrator.Event{Kind: orchestrator.EventProbe, Host: "web1", Stage: deploy.StageVerify, Version: "v2",
		Error: "GET http://10.0.0.1:8080/health: status 503, want 200"})
	lines := liveFrame(v.sum, v.order, v.batchOf, v.rows, time.Now(), 120, 24, false)
	if !strings.Contains(lines[1], "verify") || !strings.Contains(lines[1], "last probe: GET http://10.0.0.1:8080/health: status 503") {
		t.Errorf("web1's row = %q", lines[1])
	}
	if strings.Contains(out.String(), "probe") || strings.Contains(out.String(), "503") {
		t.Errorf("text output shows probes:\n%s", out.String())
	}
}
