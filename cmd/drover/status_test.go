package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/drover-dev/drover/deploy"
)

func TestPrintDeploymentShowsTheLoadBalancer(t *testing.T) {
	d := deploy.Deployment{ID: "web-1", Kind: deploy.KindDeploy, Name: "web", Version: "v1", State: deploy.StateSucceeded,
		Batches: [][]string{{"web1", "web2"}},
		Hosts: map[string]*deploy.HostProgress{
			"web1": {Name: "web1", Stage: deploy.StageDone, Phase: deploy.PhaseRollout, Target: "v1"},
			"web2": {Name: "web2", Stage: deploy.StageDone, Phase: deploy.PhaseRollout, Target: "v1"},
		}}
	for _, tc := range []struct {
		name string
		lb   map[string]string
		want []string
	}{
		{"no balancer", nil, []string{`(?m)^BATCH +HOST +STAGE +PHASE +TARGET +NOW RUNS +ERROR$`, `(?m)^1 +web2 +done +rollout +v1 +v1 *$`}},
		{"one instance", map[string]string{"web1": "UP", "web2": "MAINT"},
			[]string{`LOAD BALANCER`, `(?m)^1 +web1 +done +rollout +v1 +v1 +UP *$`, `(?m)^1 +web2 +done +rollout +v1 +v1 +MAINT *$`}},
		{"two instances", map[string]string{"web1": "lb1 UP, lb2 DRAIN"}, []string{`(?m)^1 +web1 .* v1 +lb1 UP, lb2 DRAIN *$`, `(?m)^1 +web2 .* v1 +- *$`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			printDeployment(&b, nil, tc.lb, d)
			for _, re := range tc.want {
				if !regexp.MustCompile(re).MatchString(b.String()) {
					t.Errorf("output lacks %s:\n%s", re, b.String())
				}
			}
		})
	}
}

// While a canary's weights are set, status says so, and what they go back to.
func TestPrintDeploymentShowsTheCanary(t *testing.T) {
	d := deploy.Deployment{ID: "web-1", Kind: deploy.KindDeploy, Name: "web", Version: "v2", State: deploy.StateRunning,
		Batches: [][]string{{"web1"}, {"web2"}},
		Hosts: map[string]*deploy.HostProgress{
			"web1": {Name: "web1", Stage: deploy.StageDone, Phase: deploy.PhaseRollout, Target: "v2"},
			"web2": {Name: "web2", Stage: deploy.StagePending, Phase: deploy.PhaseRollout, Target: "v2"},
		},
		Weights: &deploy.Weights{Restore: map[string]int{"web/web1": 1, "web/web2": 1}, Set: map[string]int{"web/web1": 1, "web/web2": 9}, Share: 10}}
	var b strings.Builder
	printDeployment(&b, nil, nil, d)
	if want := "(canary at 10% of the traffic: weights web/web1=1 web/web2=9, each back to web/web1=1 web/web2=1 at its end)"; !strings.Contains(b.String(), want) {
		t.Errorf("status lacks %q:\n%s", want, b.String())
	}
}
