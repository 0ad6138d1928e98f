package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
)

// Issue 9: a mistake in the plan never leaves the fleet worse than before
// (DESIGN.md invariant 7). Each scenario runs under load through HAProxy.

// TestPlanMistakeRollsBackCleanly: a health check on a wrong port, and
// separately a restart that exits 7, fail the first batch; the rollback
// verifies v1 the way v1's deployment did, so every host ends on v1 and UP,
// exit 3, and no request fails.
func TestPlanMistakeRollsBackCleanly(t *testing.T) {
	s := newSession(t, 4)
	if code, d := s.run("deploy", s.plan("v1", false, "2")); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	s.expectAllOn("v1")
	restart := s.lab.ReleasePath + "/current/bin/restart"
	for _, tc := range []struct {
		name, version string
		mistake       func(*lab.PlanParams)
		key           string // the plan key the failure names, if any
	}{
		{"wrong health port", "v2", func(p *lab.PlanParams) { p.HealthPort = s.lab.AppPort + 1 }, "health.http.url"},
		{"restart exits 7", "v3", func(p *lab.PlanParams) { p.Restart = restart + " && exit 7" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			var d *drover
			plan := s.plan(tc.version, false, "2", tc.mistake)
			res, _ := s.underLoad(2, func() {
				var code int
				code, d = s.run("deploy", plan)
				if code != 3 {
					t.Fatalf("deploy %s: exit %d, want 3 (failed and rolled back cleanly)\n%s", tc.version, code, d.stdout.text())
				}
			})
			if tc.key != "" {
				// Every host of the batch failed the check: the reason
				// says where it is written.
				text, err := os.ReadFile(plan)
				if err != nil {
					t.Fatal(err)
				}
				var at string
				for i, l := range strings.Split(string(text), "\n") {
					if c := strings.Index(l, "url: "); c >= 0 && at == "" {
						at = fmt.Sprintf("%s:%d:%d: %s", plan, i+1, c+6, tc.key)
					}
				}
				if want := "each failed the health check at " + at; !strings.Contains(d.stderr.String(), want) {
					t.Errorf("stderr does not say %q:\n%s", want, d.stderr.String())
				}
			}
			t.Logf("%s: %d requests through HAProxy, %d failed", tc.name, res.Requests, res.Failures)
			s.expectAllOn("v1")
			// The rollback said which deployment's checks it used.
			said := 0
			for _, ev := range d.stdout.all() {
				if ev.Kind == orchestrator.EventNote && ev.Phase == "rollback" && strings.Contains(ev.Message, "which deployed it") {
					said++
				}
			}
			if said != 2 {
				t.Errorf("%d rollback notes name the deployment whose checks were used, want 2 (web1, web2)\n%s", said, d.stdout.text())
			}
		})
	}
}

// TestOutageRefusedAtValidate: a batch as large as the fleet, or one that
// breaks min_in_service, is refused before anything is touched; at run time
// min_in_service holds counting a server already down. One load runs
// through all of it (a refusal alone is over too fast to sample).
func TestOutageRefusedAtValidate(t *testing.T) {
	s := newSession(t, 4)
	if code, d := s.run("deploy", s.plan("v1", false, "2")); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	plan := s.plan("v4", false, "4", func(p *lab.PlanParams) { p.AllowFullOutage = true })
	out, err := s.lab.Command(context.Background(), droverBin, "plan", "show", plan).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "THIS DEPLOY CAUSES AN OUTAGE") {
		t.Errorf("plan show of allow_full_outage: %v\n%s", err, out)
	}

	s.killApp("web4") // DOWN in HAProxy before the load starts
	where := regexp.MustCompile(`plan-v[0-9]+\.yaml:[0-9]+:[0-9]+: strategy\.`)
	res, _ := s.underLoad(2, func() {
		for _, tc := range []struct {
			name, version, batch string
			extra                func(*lab.PlanParams)
			want                 string
		}{
			{"batch as large as the fleet", "v2", "10", func(*lab.PlanParams) {}, "takes all 4 servers of backend web out of rotation"},
			{"min_in_service", "v3", "2", func(p *lab.PlanParams) { p.MinInService = "3" }, "leaving 2, fewer than strategy.min_in_service=3"},
		} {
			plan := s.plan(tc.version, false, tc.batch, tc.extra)
			out, err := s.lab.Command(context.Background(), droverBin, "plan", "validate", plan).CombinedOutput()
			if code := exitCode(err); code != 2 || !where.Match(out) || !strings.Contains(string(out), tc.want) {
				t.Errorf("%s: plan validate: exit %d, want 2 with FILE:LINE:COL and %q:\n%s", tc.name, code, tc.want, out)
			}
			code, d := s.run("deploy", plan)
			if code != 2 || !strings.Contains(d.stderr.String(), tc.want) {
				t.Errorf("%s: deploy: exit %d, want 2 with %q\n%s", tc.name, code, tc.want, d.stderr.String())
			}
			for _, ev := range d.stdout.all() {
				if ev.Kind == orchestrator.EventStage {
					t.Errorf("%s: a stage ran: %+v", tc.name, ev)
				}
			}
		}
		// batch 2 and min_in_service 2, with web4 down: web1 and web2
		// (batch 1) may only leave one at a time, so at most 2 servers
		// (web4 and one) are ever out.
		code, d := s.run("deploy", s.plan("v5", false, "2", func(p *lab.PlanParams) { p.MinInService = "2" }))
		if code != 0 {
			t.Fatalf("deploy v5 with web4 down: exit %d\n%s", code, d.stdout.text())
		}
	})
	t.Logf("refusals, then v5 with web4 down: %d requests through HAProxy, %d failed", res.Requests, res.Failures)
	s.expectAllOn("v5")
}

// TestRepair: a server drained by hand and an app killed are brought back
// by `drover repair`, batch by batch, under load; `drover status` shows
// both before. A redeploy of the running version puts a drained host back
// too, without reinstalling it, and says so.
func TestRepair(t *testing.T) {
	s := newSession(t, 4)
	v1 := s.plan("v1", false, "2")
	if code, d := s.run("deploy", v1); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	if _, err := s.lab.HAProxy(context.Background(), "set server web/web2 state maint"); err != nil {
		t.Fatal(err)
	}
	s.killApp("web3")

	out, _ := s.lab.Command(context.Background(), droverBin, "status", "--data-dir", s.dataDir).CombinedOutput()
	t.Logf("drover status:\n%s", out)
	for _, want := range []*regexp.Regexp{regexp.MustCompile(`web2 .* v1 +MAINT`), regexp.MustCompile(`web3 .* v1 +DOWN`), regexp.MustCompile(`web1 .* v1 +UP`)} {
		if !want.Match(out) {
			t.Errorf("status does not show %s", want)
		}
	}

	res, _ := s.underLoad(2, func() {
		if code, d := s.run("repair", v1); code != 0 {
			t.Fatalf("repair: exit %d\n%s\n%s", code, d.stdout.text(), d.stderr.String())
		}
	})
	t.Logf("repair: %d requests through HAProxy, %d failed", res.Requests, res.Failures)
	s.expectAllOn("v1")

	t.Run("redeploy of the running version re-enables a drained host", func(t *testing.T) {
		s.t = t
		if _, err := s.lab.HAProxy(context.Background(), "set server web/web1 state maint"); err != nil {
			t.Fatal(err)
		}
		res, _ := s.underLoad(1, func() {
			code, d := s.run("deploy", v1)
			if code != 0 {
				t.Fatalf("redeploy v1: exit %d\n%s", code, d.stdout.text())
			}
			reported := false
			for _, ev := range d.stdout.all() {
				reported = reported || ev.Kind == orchestrator.EventNote && ev.Host == "web1" && strings.Contains(ev.Message, "no reinstall")
				if ev.Kind == orchestrator.EventStage && ev.Stage == "install" {
					t.Errorf("%s was reinstalled", ev.Host)
				}
			}
			if !reported {
				t.Errorf("the deploy did not report re-enabling web1:\n%s", d.stdout.text())
			}
		})
		t.Logf("redeploy: %d requests through HAProxy, %d failed", res.Requests, res.Failures)
		s.expectAllOn("v1")
	})
}

// killApp stops a host's app (SIGTERM, as a crash or a person would) and
// waits until HAProxy has marked it DOWN, so that load started afterwards
// only sees what drover does.
func (s *session) killApp(host string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, err := s.lab.SSH(ctx, host, fmt.Sprintf("kill $(cat %s/app.pid)", s.lab.ReleasePath))
	if err != nil {
		s.t.Fatal(err)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("kill the app on %s: %v\n%s", host, err, out)
	}
	for {
		states, err := s.lab.ServerStates(ctx)
		if err == nil && strings.HasPrefix(states[host], "DOWN") {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("%s not DOWN in HAProxy after its app was killed: %v %v", host, states, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// exitCode is a finished command's exit code (-1 when it did not run).
func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}
