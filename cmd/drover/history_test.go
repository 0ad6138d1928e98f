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

// `drover rollback` without an ID takes back the newest deploy that
// changed hosts, not a newer one refused at preflight.
func TestRollbackDefaultSkipsRefused(t *testing.T) {
	at := func(id string, st deploy.DeploymentState, touched bool) deploy.Deployment {
		return deploy.Deployment{ID: id, Kind: deploy.KindDeploy, State: st,
			Hosts: map[string]*deploy.HostProgress{"web1": {Name: "web1", Stage: deploy.StagePending, Touched: touched}}}
	}
	ds := []deploy.Deployment{at("v2", deploy.StateSucceeded, true), at("v3-refused", deploy.StateFailed, false)}
	d, err := newestOf(ds, rollbackDefault, "here")
	if err != nil || d.ID != "v2" {
		t.Errorf("rollback takes %q (%v), want v2", d.ID, err)
	}
}
