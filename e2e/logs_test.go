package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
)

// text runs drover with args and text output in the lab, and returns its
// exit code, stdout and stderr.
func (s *session) text(env []string, args ...string) (int, string, string) {
	s.t.Helper()
	d := s.launch(env, append(args, "--output", "text")...)
	code := d.wait(s.t)
	return code, d.stdout.text(), d.stderr.String()
}

// deploymentID is the deployment a drover run with JSON output showed.
func deploymentID(t *testing.T, d *drover) string {
	t.Helper()
	return d.stdout.waitFor(t, "a deployment's ID", func(ev orchestrator.Event) bool { return ev.Deployment != "" }).Deployment
}

// logLines decodes JSON Lines of deploy.LogLine.
func logLines(t *testing.T, out string) []deploy.LogLine {
	t.Helper()
	var lines []deploy.LogLine
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var ln deploy.LogLine
		if err := json.Unmarshal(sc.Bytes(), &ln); err != nil {
			t.Fatalf("not a log line: %q: %v", sc.Text(), err)
		}
		lines = append(lines, ln)
	}
	return lines
}

// A release whose activate (its restart) prints on both streams and
// fails: `drover logs ID web1 --stage activate` shows both streams apart
// with times, `status` names the command and shows its last lines, and the
// JSON output keeps the streams as fields.
func TestLogsOfAFailedActivate(t *testing.T) {
	s := newSession(t, 2)
	if code, d := s.run("deploy", s.plan("v1", false, "1")); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	restart := `echo "starting v2"; echo "fatal: cannot bind :8080" >&2; echo "API_TOKEN=tok-s3cr3t"; exit 7`
	code, d := s.run("deploy", s.plan("v2", false, "1", func(p *lab.PlanParams) { p.Restart = restart }))
	if code != 3 {
		t.Fatalf("deploy v2 with a failing restart: exit %d, want 3 (rolled back)\n%s", code, d.stdout.text())
	}
	id := deploymentID(t, d)
	web1 := s.lab.HostNames()[0]
	s.expectAllOn("v1")

	code, out, errOut := s.text(nil, "logs", id, web1, "--stage", "activate", "--data-dir", s.dataDir)
	if code != 0 {
		t.Fatalf("drover logs: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("drover logs %s %s --stage activate:\n%s", id, web1, out)
	for _, want := range []string{
		`(?m)^== ` + web1 + ` activate: switch current and restart: echo "starting v2"`,
		`(?m)^  \d\d:\d\d:\d\d\.\d{3} stdout starting v2$`,
		`(?m)^  \d\d:\d\d:\d\d\.\d{3} stderr fatal: cannot bind :8080$`,
		`(?m)^  \d\d:\d\d:\d\d\.\d{3} stdout API_TOKEN=\[redacted\]$`,
		// web1's rollback ran v1's restart in the same stage, marked.
		`(?m)^== ` + web1 + ` activate \(rollback\): switch current and restart: `,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("drover logs lacks /%s/", want)
		}
	}
	if strings.Contains(out, "tok-s3cr3t") {
		t.Errorf("the secret is in the recorded output")
	}

	jd := s.start("logs", id, web1, "--stage", "activate")
	code, out, errOut = jd.wait(t), jd.stdout.text(), jd.stderr.String()
	var page deploy.LogPage
	if err := json.Unmarshal([]byte(out), &page); code != 0 || err != nil {
		t.Fatalf("drover logs -o json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	streams := map[string]deploy.Stream{}
	for _, ln := range page.Lines {
		streams[ln.Text] = ln.Stream
		if ln.At.IsZero() || ln.Host != web1 || ln.Stage != deploy.StageActivate {
			t.Errorf("line without time, host or stage: %+v", ln)
		}
	}
	if streams["starting v2"] != deploy.Stdout || streams["fatal: cannot bind :8080"] != deploy.Stderr {
		t.Errorf("streams in JSON: %v", streams)
	}

	code, out, errOut = s.text(nil, "status", id, "--data-dir", s.dataDir)
	if code != 0 {
		t.Fatalf("drover status: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("drover status %s:\n%s", id, out)
	for _, want := range []string{
		`(?m)^` + web1 + `: activate: switch current and restart: echo "starting v2".*exit`,
		`(?m)^    \d\d:\d\d:\d\d\.\d{3} stderr fatal: cannot bind :8080$`,
		`drover logs ` + id + ` ` + web1 + ` --stage activate`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("drover status lacks /%s/", want)
		}
	}

	if code, _, errOut := s.text(nil, "logs", id, "web9", "--data-dir", s.dataDir); code != 2 || !strings.Contains(errOut, "not a host of "+id) {
		t.Errorf("logs of a host not in the deployment: exit %d, %s", code, errOut)
	}
}

// Through a cluster: `drover logs --follow` on a running deployment prints
// lines as they are printed on the hosts and returns when the deployment
// ends; the output is in the replicated state, so it is still there when
// the leader that recorded it is gone.
func TestLogsFollowAndFailover(t *testing.T) {
	c := newCluster(t, 2)
	hook := `for i in 1 2 3 4 5; do echo "tick $i"; echo "tock $i" >&2; sleep 0.2; done`
	p := c.plan("v1", false, "1", func(p *lab.PlanParams) {
		p.HAProxyTCP = true
		p.Extra = "hooks:\n  after_activate:\n    - '" + hook + "'\n"
	})
	deployer := c.startWith(c.env(), "deploy", p)
	id := deploymentID(t, deployer)
	follower := c.launch(c.env(), "logs", id, "--follow", "-o", "json")
	// The first lines arrive while the deployment still runs.
	testwait.Within(t, 2*time.Minute, "the first followed line", func() bool { return strings.Contains(follower.stdout.text(), "tick 1") },
		func() string { return follower.stdout.text() + follower.stderr.String() })
	select {
	case <-deployer.done:
		t.Fatalf("the deployment ended before the follower showed a line:\n%s", follower.stdout.text())
	default:
	}
	if code := deployer.wait(t); code != 0 {
		t.Fatalf("deploy: exit %d\n%s%s", code, deployer.stdout.text(), deployer.stderr.String())
	}
	if code := follower.wait(t); code != 0 {
		t.Fatalf("logs --follow: exit %d\n%s", code, follower.stderr.String())
	}
	lines := logLines(t, follower.stdout.text())
	count := func(lines []deploy.LogLine) map[string]int {
		n := map[string]int{}
		for _, ln := range lines {
			if strings.HasPrefix(ln.Command, "hook ") {
				n[ln.Host+" "+string(ln.Stream)]++
			}
		}
		return n
	}
	for _, h := range c.lab.HostNames() {
		for _, st := range []deploy.Stream{deploy.Stdout, deploy.Stderr} {
			if n := count(lines)[h+" "+string(st)]; n != 5 {
				t.Errorf("followed %d %s lines of %s, want 5:\n%s", n, st, h, follower.stdout.text())
			}
		}
	}
	for i := 1; i < len(lines); i++ {
		if lines[i].Seq <= lines[i-1].Seq {
			t.Errorf("line %d repeated or out of order: %d after %d", i, lines[i].Seq, lines[i-1].Seq)
		}
	}

	leader := c.waitLeader(c.nodes)
	if err := c.Procs[leader].Kill(); err != nil {
		t.Fatalf("kill -9 %s: %v", leader, err)
	}
	others := c.others(leader)
	c.waitLeader(others)
	d := c.launch(c.env(others...), "logs", id, "-o", "json")
	if code := d.wait(t); code != 0 {
		t.Fatalf("logs after the leader was killed: exit %d\n%s", code, d.stderr.String())
	}
	var page deploy.LogPage
	if err := json.Unmarshal([]byte(d.stdout.text()), &page); err != nil {
		t.Fatal(err)
	}
	if got, want := count(page.Lines), count(lines); fmt.Sprint(got) != fmt.Sprint(want) || len(page.Lines) != len(lines) {
		t.Errorf("after failover: %v (%d lines), before: %v (%d lines)", got, len(page.Lines), want, len(lines))
	}
}
