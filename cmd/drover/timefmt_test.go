package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
)

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{850 * time.Millisecond, "850ms"},
		{2784 * time.Millisecond, "2.8s"},
		{12345 * time.Millisecond, "12.3s"},
		{59960 * time.Millisecond, "1m00s"}, // not "60.0s"
		{4*time.Minute + 5*time.Second, "4m05s"},
		{time.Hour + 2*time.Minute + 20*time.Second, "1h02m"},
		{59*time.Minute + 59*time.Second + 600*time.Millisecond, "1h00m"},
	} {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "-"},
		{now, "just now"},
		{now.Add(-45 * time.Second), "45s ago"},
		{now.Add(-3*time.Minute - 59*time.Second), "3m ago"},
		{now.Add(-2 * time.Hour), "2h ago"},
		{now.Add(-47 * time.Hour), "47h ago"},
		{now.Add(-72 * time.Hour), "3d ago"},
		{now.Add(15 * time.Minute), "in 15m"},
	} {
		if got := ago(tc.t, now); got != tc.want {
			t.Errorf("ago(now%+v) = %q, want %q", tc.t.Sub(now), got, tc.want)
		}
	}
}

func TestClockIsLocalWithZone(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = time.FixedZone("CET", 3600)
	at := time.Date(2026, 11, 29, 10, 0, 2, 0, time.UTC)
	if got, want := clock(at), "2026-11-29 11:00:02 CET"; got != want {
		t.Errorf("clock = %q, want %q", got, want)
	}
	if got := clock(time.Time{}); got != "-" {
		t.Errorf("clock(zero) = %q, want -", got)
	}
}

// The end of a deploy, status and history write the same duration for a
// deployment, and JSON the same value in seconds: one measure (elapsed),
// one format (humanDuration).
func TestOneDurationEverywhere(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for _, took := range []time.Duration{2784 * time.Millisecond, 3328 * time.Millisecond, 95 * time.Second} {
		d := deploy.Deployment{ID: "d1", Name: "web", Version: "v2", Kind: deploy.KindDeploy, State: deploy.StateSucceeded,
			Created: t0, Updated: t0.Add(took), Ended: t0.Add(took), Batches: [][]string{{"web1"}},
			Hosts: map[string]*deploy.HostProgress{"web1": {Name: "web1", Stage: deploy.StageDone, Phase: deploy.PhaseRollout, Target: "v2", Touched: true}}}
		want := humanDuration(took)
		var end, status, history bytes.Buffer
		v, _ := newView(&end, "text")
		v.begin(d)
		v.end(d)
		printDeployment(&status, nil, nil, d)
		if err := printHistory(&history, []deploy.Deployment{d}, 0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		for name, re := range map[string]*regexp.Regexp{
			"deploy": regexp.MustCompile(`succeeded after (\S+)\n`),
			"status": regexp.MustCompile(`started: .*, ran (\S+)\n`),
			// ID KIND FROM VERSION STATE HOSTS STARTED DURATION BY
			"history": regexp.MustCompile(`(?m)^d1 +deploy +- +v2 +succeeded +1 +1h ago +(\S+) +-$`),
		} {
			out := map[string]string{"deploy": end.String(), "status": status.String(), "history": history.String()}[name]
			m := re.FindStringSubmatch(out)
			if m == nil || m[1] != want {
				t.Errorf("%v: %s shows %v, want %s:\n%s", took, name, m, want, out)
			}
		}
		if got := toJSON(d).DurationSeconds; got != took.Seconds() {
			t.Errorf("%v: duration_seconds %v", took, got)
		}
	}
}

// historyControl serves ds (oldest first) as the newest deployments.
type historyControl struct {
	control
	ds    []deploy.Deployment
	calls []int
}

func (c *historyControl) newest(_ context.Context, n int) ([]deploy.Deployment, error) {
	c.calls = append(c.calls, n)
	return newest(c.ds, n), nil
}

// history hides the deployments refused before touching a host unless
// --all, and still shows --limit of the others.
func TestHistoryHidesRefused(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	dep := func(id string, st deploy.DeploymentState, touched bool) deploy.Deployment {
		stage := deploy.StagePending
		if touched {
			stage = deploy.StageFailed
		}
		return deploy.Deployment{ID: id, Kind: deploy.KindDeploy, Version: "v-" + id, State: st, Created: t0, Ended: t0.Add(time.Second),
			Batches: [][]string{{"web1"}}, Hosts: map[string]*deploy.HostProgress{"web1": {Name: "web1", Stage: stage, Touched: touched}}}
	}
	ds := []deploy.Deployment{ // oldest first
		dep("ok1", deploy.StateSucceeded, true),
		dep("bad", deploy.StateFailed, true),
		dep("ref1", deploy.StateFailed, false),
		dep("ref2", deploy.StateFailed, false),
	}
	for _, tc := range []struct {
		name       string
		limit      int
		all        bool
		want       []string // IDs, newest first
		wantHidden int
	}{
		{"default", 20, false, []string{"bad", "ok1"}, 2},
		{"--all", 20, true, []string{"ref2", "ref1", "bad", "ok1"}, 0},
		{"--limit 2 looks past the refused", 2, false, []string{"bad", "ok1"}, 2},
		{"--limit 1", 1, false, []string{"bad"}, 2},
		{"--limit 0", 0, false, []string{"bad", "ok1"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctl := &historyControl{ds: ds}
			got, hidden, err := listed(context.Background(), ctl, tc.limit, tc.all)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := printHistory(&out, got, hidden, t0); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] {
				if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(line, "(") {
					ids = append(ids, f[0])
				}
			}
			if strings.Join(ids, " ") != strings.Join(tc.want, " ") || hidden != tc.wantHidden {
				t.Errorf("listed %v (%d hidden), want %v (%d hidden):\n%s", ids, hidden, tc.want, tc.wantHidden, out.String())
			}
			if tc.all && !regexp.MustCompile(`(?m)^ref1 +deploy +- +v-ref1 +refused `).MatchString(out.String()) {
				t.Errorf("--all does not show ref1 as refused:\n%s", out.String())
			}
			if tc.wantHidden > 0 && !strings.Contains(out.String(), "(2 refused before changing any host not shown: drover history --all)") {
				t.Errorf("no note of the hidden ones:\n%s", out.String())
			}
		})
	}
}
