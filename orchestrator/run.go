package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/analysis"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/fence"
	"github.com/drover-dev/drover/plans"
)

// run is one Run call: the plan, the open connections and the artifact.
type run struct {
	e     *Engine
	id    string
	kind  deploy.Kind
	plan  *plans.Plan
	hosts map[string]plans.Host
	stop  <-chan struct{}

	connector Connector
	lb        Balancer
	rawLB     Balancer        // lb without the fence: the gates read its counters
	gates     []analysis.Gate // built at the first analysis (see analyse)
	gatesErr  error
	art       *Artifact // nil for an operator's rollback: nothing to upload

	dials      chan struct{} // connection set-ups in flight (see hosts.go)
	warm       *Warm         // connections opened before the deployment was recorded, or nil
	pruneSlots chan struct{} // prunes in flight
	prunes     sync.WaitGroup

	mu      sync.Mutex
	conns   map[string]Host
	pruning map[string]chan struct{} // hosts whose prune this run started; closed when it ends
	began   map[string]time.Time     // when each host entered its current stage
	probes  map[string]string        // each host's last recorded probe result (report)
	// observed is the release each host's `current` pointed at in preflight.
	observed map[string]string
	// kept lists the releases each host keeps (complete ones), seen in preflight.
	kept map[string][]string
	// verifyPlans caches checks(): by host and release.
	verifyPlans map[string]*plans.Plan

	rot rotation // strategy.min_in_service

	book       *logbook // the commands' output, recorded in batches
	secretVals []string // see secretValues
}

func (e *Engine) newRun(ctx context.Context, d deploy.Deployment, stop <-chan struct{}) (*run, error) {
	var p plans.Plan
	if err := json.Unmarshal(d.Plan, &p); err != nil {
		return nil, fmt.Errorf("decode plan of %s: %w", d.ID, err)
	}
	r := &run{
		e: e, id: d.ID, kind: d.Kind, plan: &p, stop: stop,
		hosts: map[string]plans.Host{}, conns: map[string]Host{}, began: map[string]time.Time{}, observed: map[string]string{}, kept: map[string][]string{},
		verifyPlans: map[string]*plans.Plan{}, rot: rotation{out: map[string]bool{}},
		dials: make(chan struct{}, p.HostConcurrency()), pruneSlots: make(chan struct{}, p.HostConcurrency()),
		pruning: map[string]chan struct{}{}, probes: map[string]string{},
		book: newLogbook(e.d.Store, d.ID, e.d.Now), secretVals: secretValues(p.Secrets),
	}
	for _, h := range p.Hosts {
		r.hosts[h.Name] = h
	}
	var err error
	if r.connector, err = e.d.Connector(&p); err != nil {
		return nil, fmt.Errorf("set up transport: %w", err)
	}
	if r.lb, err = e.d.Balancer(&p); err != nil {
		return nil, fmt.Errorf("set up load balancer: %w", err)
	}
	r.rawLB = r.lb
	if r.lb != nil && e.d.Fence != nil {
		r.lb = fencedBalancer{r.lb, e.d.Fence}
	}
	if d.Kind == deploy.KindDeploy {
		file := p.Release.Artifact
		if e.d.ArtifactPath != nil && d.ArtifactSHA256 != "" {
			if file, err = e.d.ArtifactPath(ctx, d.ArtifactSHA256); err != nil {
				return nil, fmt.Errorf("artifact of %s: %w", d.ID, err)
			}
		}
		a, err := e.artifact(file, p.Release.StripComponents)
		if err != nil {
			return nil, err
		}
		if d.ArtifactSHA256 != "" && a.SHA256 != d.ArtifactSHA256 {
			return nil, fmt.Errorf("artifact %s changed since the deployment was submitted (sha256 %s, recorded %s)",
				a.Path, a.SHA256, d.ArtifactSHA256)
		}
		r.art = &a
	}
	return r, nil
}

func (r *run) close() {
	r.prunes.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
}

func (r *run) emit(ev Event) {
	ev.Time = r.e.d.Now()
	ev.Deployment = r.id
	r.e.d.Events(ev)
}

func (r *run) deployment() (deploy.Deployment, error) {
	return r.e.d.Store.Deployment(r.id)
}

func (r *run) setState(ctx context.Context, st deploy.DeploymentState, msg string) error {
	r.book.flush(ctx) // the output that led here is recorded first
	return r.e.d.Store.Apply(ctx, &deploy.SetState{ID: r.id, State: st, Error: msg, At: r.e.d.Now().UTC()})
}

// stopRequested reports whether a pause was asked, locally or through the store.
func (r *run) stopRequested() bool {
	select {
	case <-r.stop:
		return true
	default:
	}
	d, err := r.deployment()
	return err == nil && d.StopRequested()
}

// run is the deployment's main loop: decide from the recorded state, act,
// record, repeat.
func (r *run) run(ctx context.Context) (deploy.DeploymentState, error) {
	d, err := r.deployment()
	if err != nil {
		return "", err
	}
	r.emit(Event{Kind: EventStarted, Version: d.Version, Batches: len(d.Batches), State: d.State})
	if d.State == deploy.StatePaused {
		if err := r.setState(ctx, deploy.StateRunning, ""); err != nil {
			return d.State, err
		}
	}
	// Weights a canary left (a leader or a run that stopped during it)
	// go back first; a canary still to watch sets them again.
	if err := r.restoreWeights(ctx); err != nil {
		return deploy.StateRunning, err
	}
	if d.State == deploy.StateRollingBack {
		return r.rollbackAll(ctx, "")
	}
	if !d.Touched() {
		if err := r.preflight(ctx, d); err != nil {
			msg := err.Error()
			if serr := r.setState(ctx, deploy.StateFailed, msg); serr != nil {
				return deploy.StateRunning, errors.Join(err, serr)
			}
			r.emit(Event{Kind: EventFinished, State: deploy.StateFailed, Error: msg})
			return deploy.StateFailed, err
		}
		r.report(ctx, Event{Kind: EventPreflight, Message: fmt.Sprintf("%d hosts ready", len(d.HostNames()))})
	}
	budget := r.plan.MaxFailures()
	policy := deploy.PolicyOf(r.kind, r.plan)
	first := deploy.OpenBatch(&d, policy)
	for b := first; b < len(d.Batches); b++ {
		// The batch index is not recorded as it advances (it would cost a
		// Raft round trip per batch): resume derives it from host stages.
		if b > first && r.stopRequested() {
			return r.pause(ctx, b)
		}
		r.emit(Event{Kind: EventBatch, Batch: b + 1, Batches: len(d.Batches), Hosts: d.Batches[b]})
		if err := r.runBatch(ctx, d.Batches[b]); err != nil {
			return deploy.StateRunning, err
		}
		if d, err = r.deployment(); err != nil {
			return deploy.StateRunning, err
		}
		if st, stop, err := r.overBudget(ctx, d, budget); stop {
			return st, err
		}
		// Within budget, the batch's hosts are back in rotation: judge them
		// by their metrics before the next batch.
		if deploy.AwaitsAnalysis(&d, b, policy) {
			if err := r.analyse(ctx, d, b); err != nil {
				return deploy.StateRunning, err
			}
			if d, err = r.deployment(); err != nil {
				return deploy.StateRunning, err
			}
			if st, stop, err := r.overBudget(ctx, d, budget); stop {
				return st, err
			}
		}
		if b+1 < len(d.Batches) && r.plan.Strategy.Pause > 0 {
			select {
			case <-time.After(r.plan.Strategy.Pause):
			case <-r.stop:
			case <-ctx.Done():
				return deploy.StateRunning, ctx.Err()
			}
		}
	}
	if r.kind == deploy.KindDeploy {
		r.prune(ctx, d)
	}
	return r.finish(ctx, deploy.StateSucceeded, "")
}

// overBudget ends the rollout (stop) when more hosts failed than the
// budget allows: rolled back, or failed when nothing can be.
func (r *run) overBudget(ctx context.Context, d deploy.Deployment, budget int) (st deploy.DeploymentState, stop bool, err error) {
	failed := failedHosts(d)
	if len(failed) <= budget {
		return "", false, nil
	}
	msg := fmt.Sprintf("%d host(s) failed (%s), more than max_failures=%d", len(failed), strings.Join(failed, ", "), budget) + sharedCheck(r.plan, d, failed)
	switch {
	case !d.Touched():
		// Refused before any side effect (min_in_service): there is
		// nothing to roll back.
		st, err = r.finish(ctx, deploy.StateFailed, msg+"; no host was touched")
	case r.kind == deploy.KindRepair:
		st, err = r.finish(ctx, deploy.StateFailed, msg+"; repair stopped: see each host's error")
	case !r.plan.Rollback.Automatic:
		st, err = r.finish(ctx, deploy.StateFailed, msg+"; automatic rollback is off: hosts left as they are")
	default:
		st, err = r.rollbackAll(ctx, msg)
	}
	return st, true, err
}

func (r *run) pause(ctx context.Context, batch int) (deploy.DeploymentState, error) {
	d, err := r.deployment()
	if err != nil {
		return deploy.StateRunning, err
	}
	if deploy.AbortNow(&d, deploy.SafePoint) {
		return r.finish(ctx, deploy.StateAborted, deploy.AbortedByOperator)
	}
	r.prunes.Wait() // paused, like finished, means nothing touches a host any more
	if err := r.restoreWeights(ctx); err != nil {
		return deploy.StateRunning, err
	}
	if err := r.setState(ctx, deploy.StatePaused, ""); err != nil {
		return deploy.StateRunning, err
	}
	r.emit(Event{Kind: EventPaused, Batch: batch + 1, Batches: len(d.Batches),
		Message: fmt.Sprintf("paused before batch %d of %d; every host is in rotation", batch+1, len(d.Batches))})
	return deploy.StatePaused, nil
}

func (r *run) finish(ctx context.Context, st deploy.DeploymentState, msg string) (deploy.DeploymentState, error) {
	r.prunes.Wait() // the prunes of hosts done in the last batch
	// Whatever the end, every server goes back to its weight first.
	if err := r.restoreWeights(ctx); err != nil {
		return deploy.StateRunning, err
	}
	if st == deploy.StateSucceeded || st == deploy.StateRolledBack {
		// Never "succeeded" (nor "rolled back cleanly") while a host is
		// out of rotation, whatever the stages say.
		out, err := r.outOfRotation(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return deploy.StateRunning, ctx.Err()
		case err != nil:
			st, msg = deploy.StateFailed, joinMsg(msg, fmt.Sprintf("could not confirm that every host is in rotation: %v", err))
		case len(out) > 0:
			st, msg = deploy.StateFailed, joinMsg(msg, fmt.Sprintf("%s at the end: %s", ErrOutOfRotation, strings.Join(out, ", ")))
		}
	}
	if err := r.setState(ctx, st, msg); err != nil {
		return deploy.StateRunning, err
	}
	r.emit(Event{Kind: EventFinished, State: st, Error: msg})
	return st, nil
}

func joinMsg(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// runBatch drives every host of a batch at once and returns only errors
// that stop the engine itself (store, cancellation); host failures are
// recorded in the store.
func (r *run) runBatch(ctx context.Context, batch []string) error {
	return errors.Join(each(batch, func(name string) error {
		defer r.release(r.hosts[name])
		if err := r.host(ctx, name); err != nil {
			return err
		}
		r.finishedWith(ctx, name)
		return nil
	})...)
}

// each calls fn for every item at once and returns the errors by position.
func each[T any](items []T, fn func(T) error) []error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(it)
		}()
	}
	wg.Wait()
	return errs
}

// host takes one host as far as it can go in the current phase.
func (r *run) host(ctx context.Context, name string) error {
	d, err := r.deployment()
	if err != nil {
		return err
	}
	hp := d.Hosts[name]
	switch {
	case hp.Phase == deploy.PhaseRollback:
		if hp.Stage.Settled() {
			return nil
		}
		return r.rollbackHost(ctx, hp)
	case hp.Stage == deploy.StageDone || hp.Stage == deploy.StageSkipped:
		return nil
	case hp.Stage == deploy.StageFailed:
		if r.rollsBack() {
			return r.rollbackHost(ctx, hp)
		}
		return nil
	}
	stages, from := pipeline, hp.Stage
	if hp.Stage == deploy.StagePending && (r.kind == deploy.KindRepair ||
		!d.Force && r.kind == deploy.KindDeploy && r.alreadyOn(name, hp.Target)) {
		var done bool
		if stages, done, err = r.reconcile(ctx, hp); done || err != nil {
			return err
		}
		from = stages[0]
	}
	err = r.drive(ctx, name, deploy.PhaseRollout, hp.Target, from, stages)
	if err == nil || isFatal(ctx, err) {
		return fatalOnly(ctx, err)
	}
	if err := r.fail(ctx, name, deploy.PhaseRollout, hp.Target, err); err != nil {
		return err
	}
	if !r.rollsBack() {
		return nil
	}
	if d, err = r.deployment(); err != nil {
		return err
	}
	return r.rollbackHost(ctx, d.Hosts[name])
}

// rollsBack: a failed host is taken back to its previous release (the
// rule is deploy.RollsBack).
func (r *run) rollsBack() bool {
	return deploy.RollsBack(r.kind, r.plan.Rollback.Automatic)
}

// rollbackHost takes one host back to the stable release it had before
// this deployment, through the same pipeline.
func (r *run) rollbackHost(ctx context.Context, hp *deploy.HostProgress) error {
	if !hp.Touched {
		// Refused before its first stage (min_in_service): nothing changed.
		return r.record(ctx, hp.Name, deploy.StageSkipped, deploy.PhaseRollback, hp.FromCurrent, "never touched: nothing to roll back")
	}
	if hp.FromCurrent == "" {
		msg := "no previous release is known (first deploy): left out of rotation for an operator"
		r.emit(Event{Kind: EventHostFailed, Host: hp.Name, Phase: deploy.PhaseRollback, Error: msg})
		return r.record(ctx, hp.Name, deploy.StageFailed, deploy.PhaseRollback, "", msg)
	}
	start := deploy.StageDrain
	if hp.Phase == deploy.PhaseRollback && !hp.Stage.Settled() {
		start = hp.Stage
	}
	stages := pipeline
	if !hp.Activated {
		// The old release never stopped serving: prove it is healthy and
		// put it back, without touching the host (whose SSH may be what failed).
		stages = []deploy.Stage{deploy.StageDrain, deploy.StageVerify, deploy.StageEnable}
		if start == deploy.StageDrain && r.inRotation(ctx, r.hosts[hp.Name]) {
			// Never drained (it failed before, in a hook or refused by
			// min_in_service): draining it now would only cost capacity.
			stages, start = stages[1:], deploy.StageVerify
		}
	}
	err := r.drive(ctx, hp.Name, deploy.PhaseRollback, hp.FromCurrent, start, stages)
	if err == nil || isFatal(ctx, err) {
		return fatalOnly(ctx, err)
	}
	return r.fail(ctx, hp.Name, deploy.PhaseRollback, hp.FromCurrent, err)
}

func (r *run) fail(ctx context.Context, name string, phase deploy.Phase, target string, err error) error {
	ev := Event{Kind: EventHostFailed, Host: name, Phase: phase, Version: target, Error: err.Error()}
	var se *StageError
	if errors.As(err, &se) {
		ev.Stage, ev.Output = se.Stage, se.Output
	}
	r.emit(ev)
	rerr := r.e.d.Store.Apply(ctx, &deploy.SetHostStage{
		ID: r.id, Host: name, Stage: deploy.StageFailed, Phase: phase, Target: target,
		Error: err.Error(), Output: ev.Output, During: ev.Stage, At: r.e.d.Now().UTC(),
	})
	if rerr != nil {
		return &fatalError{fmt.Errorf("record %s failed: %w", name, rerr)}
	}
	return nil
}

// rollbackAll takes every touched host back, batch by batch in reverse
// order, so that never more than one batch is out of rotation.
func (r *run) rollbackAll(ctx context.Context, why string) (deploy.DeploymentState, error) {
	d, err := r.deployment()
	if err != nil {
		return deploy.StateRunning, err
	}
	if d.State != deploy.StateRollingBack {
		if err := r.setState(ctx, deploy.StateRollingBack, why); err != nil {
			return deploy.StateRunning, err
		}
	}
	r.emit(Event{Kind: EventRollback, Message: why})
	for b := len(d.Batches) - 1; b >= 0; b-- {
		var group []*deploy.HostProgress
		for _, name := range d.Batches[b] {
			if hp := d.Hosts[name]; needsRollback(hp) {
				group = append(group, hp)
			}
		}
		if len(group) == 0 {
			continue
		}
		r.emit(Event{Kind: EventBatch, Phase: deploy.PhaseRollback, Batch: b + 1, Batches: len(d.Batches), Hosts: names(group)})
		if err := errors.Join(each(group, func(hp *deploy.HostProgress) error {
			defer r.release(r.hosts[hp.Name])
			if err := r.rollbackHost(ctx, hp); err != nil {
				return err
			}
			r.finishedWith(ctx, hp.Name)
			return nil
		})...); err != nil {
			return deploy.StateRollingBack, err
		}
	}
	if d, err = r.deployment(); err != nil {
		return deploy.StateRollingBack, err
	}
	var stuck []string
	for _, name := range d.HostNames() {
		if hp := d.Hosts[name]; hp.Phase == deploy.PhaseRollback && hp.Stage == deploy.StageFailed {
			stuck = append(stuck, name)
		}
	}
	if len(stuck) > 0 {
		return r.finish(ctx, deploy.StateFailed,
			fmt.Sprintf("%s; rollback failed on %s: see each host's error", d.Error, strings.Join(stuck, ", ")))
	}
	return r.finish(ctx, deploy.StateRolledBack, d.Error)
}

// alreadyOn: both the store and the host itself (seen in preflight) say the
// host runs target. The store alone is not enough: hosts get rebuilt.
func (r *run) alreadyOn(name, target string) bool {
	r.mu.Lock()
	seen := r.observed[name]
	r.mu.Unlock()
	return seen == target && r.e.d.Store.HostRecord(name).Current == target
}

// needsRollback: the host was touched and is not already settled back.
func needsRollback(hp *deploy.HostProgress) bool {
	if !hp.Touched {
		return false
	}
	return !(hp.Phase == deploy.PhaseRollback && hp.Stage.Settled())
}

func failedHosts(d deploy.Deployment) []string {
	var out []string
	for _, name := range d.HostNames() {
		if d.Hosts[name].RolloutFailed {
			out = append(out, name)
		}
	}
	return out
}

func names(hps []*deploy.HostProgress) []string {
	out := make([]string, len(hps))
	for i, hp := range hps {
		out[i] = hp.Name
	}
	sort.Strings(out)
	return out
}

// isFatal tells an engine stop (store refused, cancelled) from a host failure.
func isFatal(ctx context.Context, err error) bool {
	var fe *fatalError
	return ctx.Err() != nil || errors.As(err, &fe) || errors.Is(err, fence.ErrFenced)
}

func fatalOnly(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// fatalError wraps errors that must stop the whole engine.
type fatalError struct{ err error }

func (f *fatalError) Error() string { return f.err.Error() }
func (f *fatalError) Unwrap() error { return f.err }
