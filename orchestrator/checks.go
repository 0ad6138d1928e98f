package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/plans"
)

// A release is verified the way it was verified when it was deployed: a
// rollback (or a repair) restarts, checks and hooks the previous release
// with the restart command, health checks and hooks of the deployment that
// installed it, not with those of the plan that just failed (a wrong
// health port or a broken restart would fail the rollback too).

// checks is the plan a host's stages run with for target: the run's own
// plan when it rolls the plan's release out; otherwise the run's plan with
// the restart, health and hooks of the deployment that verified target on
// that host, when the store knows one.
func (r *run) checks(ctx context.Context, name string, ph deploy.Phase, target string) *plans.Plan {
	if ph == deploy.PhaseRollout && r.kind == deploy.KindDeploy {
		return r.plan
	}
	key := name + "\x00" + target
	r.mu.Lock()
	p, ok := r.verifyPlans[key]
	r.mu.Unlock()
	if ok {
		return p
	}
	p = r.plan
	src, found := verifiedBy(r.e.d.Store.Deployments(), r.id, name, target)
	var prev plans.Plan
	if found && json.Unmarshal(src.Plan, &prev) == nil {
		p = withChecksOf(r.plan, &prev)
		r.report(ctx, Event{Kind: EventNote, Host: name, Phase: ph, Version: target,
			Message: fmt.Sprintf("verifying %s with the restart, health checks and hooks of %s, which deployed it", target, src.ID)})
	} else {
		r.report(ctx, Event{Kind: EventWarning, Host: name, Phase: ph, Version: target,
			Message: fmt.Sprintf("no earlier deployment of %s on %s is recorded: verifying it with this plan's restart, health checks and hooks", target, name)})
	}
	r.mu.Lock()
	r.verifyPlans[key] = p
	r.mu.Unlock()
	return p
}

// verifiedBy finds the newest deployment other than skip whose rollout took
// host to version through the whole pipeline. Rollback and repair
// deployments carry another release's plan and are passed over.
func verifiedBy(ds []deploy.Deployment, skip, host, version string) (deploy.Deployment, bool) {
	for i := len(ds) - 1; i >= 0; i-- {
		d := ds[i]
		if d.ID == skip || d.Kind != deploy.KindDeploy {
			continue
		}
		if hp := d.Hosts[host]; hp != nil && hp.Phase == deploy.PhaseRollout &&
			hp.Stage == deploy.StageDone && hp.Target == version {
			return d, true
		}
	}
	return deploy.Deployment{}, false
}

// withChecksOf is p with the restart command, health checks and hooks of
// prev; where and how to reach the hosts stay p's.
func withChecksOf(p, prev *plans.Plan) *plans.Plan {
	c := *p
	c.Release.Restart = prev.Release.Restart
	c.Health = prev.Health
	c.Hooks = prev.Hooks
	return &c
}
