package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/lb/haproxy"
	"github.com/drover-dev/drover/plans"
)

// A canary (strategy.canary) is the first batch: its hosts get the release
// through the usual pipeline, then HAProxy server weights give them a
// share of their backend's traffic while the gates watch them; only then
// do the other batches start. The weights are recorded through Raft
// (deploy.SetWeights) before they change, and restoreWeights is the one
// place that puts them back: after the canary's watch, at the start of
// every run (a new leader, a resume), and before any end is recorded
// (finish), so that a deployment that ends in any way leaves every server
// at the weight it had.

// weigher is a balancer whose server weights can be read and set
// (haproxy.Group: every instance).
type weigher interface {
	// Weight reads server's current weight and the one it was configured with.
	Weight(ctx context.Context, server string) (current, initial int, err error)
	SetWeight(ctx context.Context, server string, w int) error
}

// ErrNoWeights means the plan's balancer cannot weigh its servers.
var ErrNoWeights = errors.New("the load balancer cannot set server weights")

// errCanaryStopped stops a canary's watch when an operator asks for a
// pause or an abort: the canary is watched again from the start on resume.
var errCanaryStopped = errors.New("canary stopped: pause or abort requested")

// Weight reads without a fence: it changes nothing.
func (b fencedBalancer) Weight(ctx context.Context, server string) (int, int, error) {
	w, ok := b.Balancer.(weigher)
	if !ok {
		return 0, 0, ErrNoWeights
	}
	return w.Weight(ctx, server)
}

// SetWeight is fenced like Drain and Enable.
func (b fencedBalancer) SetWeight(ctx context.Context, server string, weight int) error {
	w, ok := b.Balancer.(weigher)
	if !ok {
		return ErrNoWeights
	}
	ctx, err := withFence(ctx, b.fence)
	if err != nil {
		return err
	}
	return w.SetWeight(ctx, server, weight)
}

func (r *run) weigher() (weigher, error) {
	w, ok := r.lb.(weigher)
	if !ok {
		return nil, ErrNoWeights
	}
	return w, nil
}

// canary watches the canary hosts (judged, done) at their share of the
// traffic: it records and sets the weights, runs watch (the gates, if
// any) for the canary's duration, and puts the weights back whatever the
// outcome. It returns errCanaryStopped when an operator's pause or abort
// stopped the watch.
func (r *run) canary(ctx context.Context, d deploy.Deployment, judged []string, watch func(ctx context.Context, duration time.Duration) error) error {
	c := r.plan.Strategy.Canary
	err := r.setCanaryWeights(ctx, d, judged)
	if err == nil {
		err = r.watchCanary(ctx, c.Duration, watch)
	}
	if isFatal(ctx, err) {
		return err // a new leader or a resume restores them
	}
	if rerr := r.restoreWeights(ctx); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// watchCanary runs watch for duration, stopped early when an operator asks
// for a pause or an abort: a canary may be watched for many minutes, and
// stopping it leaves every host in rotation (its weights then go back).
func (r *run) watchCanary(ctx context.Context, duration time.Duration, watch func(ctx context.Context, duration time.Duration) error) error {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		for {
			changed := r.e.d.Store.Changed()
			if r.stopRequested() {
				cancel(errCanaryStopped)
				return
			}
			select {
			case <-wctx.Done():
				return
			case <-changed: // a request is recorded
			case <-r.stop: // Ctrl-C of a local deploy
			}
		}
	}()
	err := watch(wctx, duration)
	if ctx.Err() == nil && errors.Is(context.Cause(wctx), errCanaryStopped) {
		return errCanaryStopped
	}
	return err
}

// setCanaryWeights gives the canary hosts' servers the plan's share of
// their backends' traffic. The weights to restore are those recorded by
// an earlier run of this deployment if any (the servers may still carry
// the canary's), else the servers' weights now; they are recorded with
// the canary's before any weight changes.
func (r *run) setCanaryWeights(ctx context.Context, d deploy.Deployment, judged []string) error {
	w, err := r.weigher()
	if err != nil {
		return err
	}
	share := r.plan.Strategy.Canary.Weight
	byBackend := map[string][]string{}
	for _, name := range judged {
		if h := r.hosts[name]; h.LBServer != "" {
			byBackend[h.Backend()] = append(byBackend[h.Backend()], h.LBServer)
		}
	}
	if len(byBackend) == 0 {
		return errors.New("canary weights: no canary host is behind the load balancer")
	}
	var restore map[string]int
	if d.Weights != nil {
		restore = maps.Clone(d.Weights.Restore)
	} else {
		restore = map[string]int{}
		for _, backend := range slices.Sorted(maps.Keys(byBackend)) {
			states, err := r.lb.Backend(ctx, backend)
			if err != nil {
				return fmt.Errorf("canary weights: servers of %s: %w", backend, err)
			}
			for _, s := range states.Servers() {
				cur, _, err := w.Weight(ctx, s)
				if err != nil {
					return fmt.Errorf("canary weights: %w", err)
				}
				restore[s] = cur
			}
		}
	}
	set := map[string]int{}
	for _, backend := range slices.Sorted(maps.Keys(byBackend)) {
		current := map[string]int{}
		for s, wt := range restore {
			if b, _, _ := strings.Cut(s, "/"); b == backend {
				current[s] = wt
			}
		}
		ws, err := haproxy.CanaryWeights(current, byBackend[backend], share/100)
		if err != nil {
			return fmt.Errorf("canary weights of backend %s: %w", backend, err)
		}
		maps.Copy(set, ws)
	}
	if err := r.e.d.Store.Apply(ctx, &deploy.SetWeights{ID: r.id, Restore: restore, Set: set, Share: share, At: r.e.d.Now().UTC()}); err != nil {
		return &fatalError{fmt.Errorf("record the canary's weights: %w", err)}
	}
	for _, s := range slices.Sorted(maps.Keys(set)) {
		if err := w.SetWeight(ctx, s, set[s]); err != nil {
			return fmt.Errorf("canary weights: %w", err)
		}
	}
	r.emit(Event{Kind: EventCanary, Batch: 1, Hosts: judged, Weights: set, Share: share,
		Message: fmt.Sprintf("%s at %s%% of the traffic (weights %s)", strings.Join(judged, ", "), plans.FormatShare(share), deploy.FormatWeights(set))})
	return nil
}

// restoreWeights puts every server whose weight this deployment recorded
// back (see Engine.restoreWeights).
func (r *run) restoreWeights(ctx context.Context) error {
	return r.e.restoreWeights(ctx, r.id, r.lb, r.emit)
}

// RestoreWeights puts back the server weights a canary of deployment id
// changed, if any, with the balancer of its recorded plan: for an
// operator's abort of a deployment no engine runs (deploy.Unattended),
// which ends it without a run.
func (e *Engine) RestoreWeights(ctx context.Context, id string) error {
	d, err := e.d.Store.Deployment(id)
	if err != nil || d.Weights == nil {
		return err
	}
	var p plans.Plan
	if err := json.Unmarshal(d.Plan, &p); err != nil {
		return fmt.Errorf("decode plan of %s: %w", id, err)
	}
	lb, err := e.d.Balancer(&p)
	if err != nil {
		return fmt.Errorf("set up load balancer: %w", err)
	}
	if lb != nil && e.d.Fence != nil {
		lb = fencedBalancer{lb, e.d.Fence}
	}
	return e.restoreWeights(ctx, id, lb, func(ev Event) {
		ev.Time, ev.Deployment = e.d.Now(), id
		e.d.Events(ev)
	})
}

// restoreWeights puts every server whose weight deployment id recorded
// (deploy.SetWeights) back at its recorded weight through lb, then records
// that they are back. It is the one rule for restoring weights; with none
// recorded it does nothing. A failure is fatal: the deployment must not go
// on, nor end, with servers at a canary's weights (a resume restores them).
func (e *Engine) restoreWeights(ctx context.Context, id string, lb Balancer, emit func(Event)) error {
	d, err := e.d.Store.Deployment(id)
	if err != nil {
		return &fatalError{err}
	}
	if d.Weights == nil {
		return nil
	}
	w, ok := lb.(weigher)
	if !ok {
		err = ErrNoWeights
	}
	for _, s := range slices.Sorted(maps.Keys(d.Weights.Restore)) {
		if err != nil {
			break
		}
		err = w.SetWeight(ctx, s, d.Weights.Restore[s])
	}
	if err != nil {
		if isFatal(ctx, err) {
			return fatalOnly(ctx, err)
		}
		return &fatalError{fmt.Errorf("restore the servers' weights: %w", err)}
	}
	if err := e.d.Store.Apply(ctx, &deploy.SetWeights{ID: id, At: e.d.Now().UTC()}); err != nil {
		return &fatalError{fmt.Errorf("record the restored weights: %w", err)}
	}
	emit(Event{Kind: EventCanary, Weights: d.Weights.Restore,
		Message: fmt.Sprintf("every server back at its weight (%s)", deploy.FormatWeights(d.Weights.Restore))})
	return nil
}
