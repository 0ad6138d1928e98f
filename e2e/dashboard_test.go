package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
)

// artifactsDir is where tests leave files for a human (screenshots):
// $DROVER_TEST_ARTIFACTS, else test-artifacts/ at the repository's root.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("DROVER_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium is the browser's path; the test needs it (scripts/deps.sh
// installs it), so a missing one fails under CI and skips elsewhere.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH (scripts/deps.sh installs it)")
	}
	t.Skip("no chromium on PATH: apt-get install chromium")
	return ""
}

// loopbackTo serves, on a loopback port of this (root) namespace, a TCP
// relay to addr that connects from the lab's control namespace: the
// browser runs here, and reaches a coordinator the way an operator's
// workstation would, without this process routing to a lab address.
func loopbackTo(t *testing.T, l *lab.Lab, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				up, err := l.DialControl(ctx, addr)
				cancel()
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestDashboard: a follower's web dashboard, in headless Chromium, follows
// a deployment live: signed in with a read token from the URL's fragment,
// it shows the first host on the new release while the others are held
// (a hook waits for a file), then, without a reload, driven by the event
// stream, every host on the new release and the deployment succeeded.
func TestDashboard(t *testing.T) {
	browser := chromium(t)
	c := newCluster(t, 4)
	token := c.newToken("token", "create", "dashboard", "--role", "read")
	leader := c.waitLeader(c.nodes)
	follower := c.others(leader)[0]
	base := "https://" + loopbackTo(t, c.lab, lab.APIAddr(follower))

	// Hosts after web1 wait in before_drain until /srv/dashboard-go exists.
	hold := `[ "$DROVER_HOST" = web1 ] || while [ ! -e /srv/dashboard-go ]; do sleep 0.05; done`
	plan := c.plan("v1", false, "1", func(p *lab.PlanParams) {
		p.HAProxyTCP = true
		p.Extra = fmt.Sprintf("hooks:\n  before_drain: [%q]\n", hold)
	})
	d := c.startWith(c.env(), "deploy", plan)
	first := d.stdout.waitFor(t, "web1 done", func(ev orchestrator.Event) bool {
		return ev.Kind == orchestrator.EventHostDone && ev.Host == "web1"
	})

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox,                               // root in a test container; never for operators
		chromedp.Flag("ignore-certificate-errors", true), // the cluster CA is not the browser's
		chromedp.WindowSize(1280, 860),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	// The browser lives as long as the context of the first Run: no
	// timeout on it; each step has its own.
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	step := func(what string, limit time.Duration, a func(ctx context.Context) error) {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, limit)
		defer scancel()
		if err := a(sctx); err != nil {
			t.Fatalf("%s: %v (the page shows: %s)", what, err, mustEval(ctx, `document.body.innerText`))
		}
	}
	doneOn := func(version string) string {
		return fmt.Sprintf(`document.querySelectorAll('.host[data-stage="done"][data-target=%q]').length`, version)
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate(base+"/ui/#token="+token+"&/d/"+first.Deployment)); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	var midDone int
	var mid []byte
	step("the page shows web1 done", time.Minute, func(ctx context.Context) (err error) {
		// web1 done, and its events in the page's log from the stream.
		if _, err = chromedp.Run(ctx, chromedp.Poll[bool](doneOn("v1")+` >= 1 && document.querySelectorAll('#events div').length >= 6`)); err != nil {
			return err
		}
		if midDone, err = chromedp.Run(ctx, chromedp.Evaluate[int](doneOn("v1"))); err != nil {
			return err
		}
		mid, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		return err
	})
	if midDone != 1 {
		t.Fatalf("while the other hosts are held, the page shows %d hosts done on v1, want 1", midDone)
	}
	if strings.Contains(mustEval(ctx, `location.href`), token) {
		t.Errorf("the token stays in the address bar")
	}

	// Let the other hosts go; the page must follow without a reload.
	for _, h := range c.lab.Hosts {
		if err := os.WriteFile(filepath.Join(h.SrvDir, "dashboard-go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code := d.wait(t); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s\n%s", code, d.stdout.text(), d.stderr.String())
	}
	var shot []byte
	var summary string
	step("the page shows every host done on v1", time.Minute, func(ctx context.Context) (err error) {
		if _, err = chromedp.Run(ctx, chromedp.Poll[bool](doneOn("v1")+` === 4 && document.querySelector('#summary').dataset.state === 'succeeded'`)); err != nil {
			return err
		}
		if summary, err = chromedp.Run(ctx, chromedp.Text(`#summary`)); err != nil {
			return err
		}
		shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		return err
	})
	if !strings.Contains(summary, "4/4") {
		t.Errorf("summary %q does not say 4/4 hosts done", summary)
	}
	if loads := mustEval(ctx, `String(performance.getEntriesByType("navigation").length)`); loads != "1" {
		t.Errorf("the page was loaded %s times, want once (live updates, no reload)", loads)
	}
	// The other pages: each host with the release it reached, the members.
	step("the hosts page", 30*time.Second, func(ctx context.Context) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`(location.hash = "#/hosts", true) && `+
			`[...document.querySelectorAll('tr[data-host]')].filter(r => r.children[1].textContent === "v1").length === 4`))
		return err
	})
	step("the cluster page", 30*time.Second, func(ctx context.Context) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`(location.hash = "#/cluster", true) && `+
			`document.querySelectorAll('tbody tr').length === 3`))
		return err
	})
	dir := artifactsDir(t)
	for name, b := range map[string][]byte{"dashboard-mid.png": mid, "dashboard.png": shot} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s (dashboard-mid.png, dashboard.png); summary: %s", dir, strings.Join(strings.Fields(summary), " "))
}

// mustEval is what js evaluates to in the page, or the error, for messages.
func mustEval(ctx context.Context, js string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}
