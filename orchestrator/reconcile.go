package orchestrator

import (
	"context"
	"fmt"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/plans"
)

// reconcile decides what a host that should already run its target needs:
// a host on the target release (its `current`, as seen in preflight), in
// rotation on every balancer instance and passing one health probe needs
// nothing (done: it is recorded skipped); one that is healthy but out of
// rotation is verified and enabled; one that is unhealthy is restarted
// (drain, activate, verify, enable), without reinstalling; one on another
// release (a repair only) goes through the whole pipeline, reusing the
// release on disk. It is how `deploy` treats hosts already on the
// version, and how `repair` treats every host.
func (r *run) reconcile(ctx context.Context, hp *deploy.HostProgress) (stages []deploy.Stage, done bool, err error) {
	h := r.hosts[hp.Name]
	target := hp.Target
	r.mu.Lock()
	seen := r.observed[hp.Name]
	r.mu.Unlock()

	lbWord := ""
	inRot := true
	if r.lb != nil && h.LBServer != "" {
		states, err := r.lb.State(ctx, h.LBServer)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, false, ctx.Err()
		case err != nil:
			inRot, lbWord = false, "load balancer state unknown: "+err.Error()
		default:
			inRot, lbWord = states.InRotation(h.LBServer), states.String()
		}
	}
	var probeErr error
	if seen == target {
		probeErr = r.probe(ctx, h, target)
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
	}
	var why string
	switch {
	case seen == target && inRot && probeErr == nil:
		why = fmt.Sprintf("already on %s, in rotation and healthy", target)
		r.emit(Event{Kind: EventHostSkipped, Host: hp.Name, Message: why})
		return nil, true, r.record(ctx, hp.Name, deploy.StageSkipped, deploy.PhaseRollout, target, why)
	case seen == target && probeErr == nil:
		stages = []deploy.Stage{deploy.StageVerify, deploy.StageEnable}
		why = fmt.Sprintf("on %s and healthy but out of rotation (%s): verify and enable it, no reinstall", target, lbWord)
	case seen == target:
		stages = []deploy.Stage{deploy.StageDrain, deploy.StageActivate, deploy.StageVerify, deploy.StageEnable}
		why = fmt.Sprintf("on %s but not healthy (%v): restart, verify and enable it, no reinstall", target, probeErr)
	default:
		stages = pipeline
		why = fmt.Sprintf("runs %s, recorded %s: switch it back (the release on disk is reused) and restart", orDash(seen), target)
	}
	r.report(ctx, Event{Kind: EventNote, Host: hp.Name, Version: target, Message: why})
	return stages, false, nil
}

// probe runs the health check of target on h once.
func (r *run) probe(ctx context.Context, h plans.Host, target string) error {
	p := r.checks(ctx, h.Name, deploy.PhaseRollout, target)
	chk, pol, err := r.e.d.Health(p, h, target, &lazyHost{r: r, h: h})
	if err != nil {
		return err
	}
	if pol.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pol.Timeout)
		defer cancel()
	}
	return chk.Check(ctx)
}

// inRotation reports whether every balancer instance routes to h (true
// without a balancer; false when the state cannot be read).
func (r *run) inRotation(ctx context.Context, h plans.Host) bool {
	if r.lb == nil || h.LBServer == "" {
		return true
	}
	states, err := r.lb.State(ctx, h.LBServer)
	return err == nil && states.InRotation(h.LBServer)
}
