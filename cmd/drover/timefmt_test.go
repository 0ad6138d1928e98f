package main

import (
	"bytes"
	"regexp"
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
