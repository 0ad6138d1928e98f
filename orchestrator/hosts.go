package orchestrator

import (
	"context"
	"fmt"
	"path"
	"sync"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/plans"
)

// Bounded work outside the batches. A batch runs all its hosts at once (its
// size is the operator's choice), but preflight, connection set-up and
// prune touch the whole fleet: they run at most plan.HostConcurrency()
// hosts at once, so that a fleet of hundreds never opens hundreds of SSH
// handshakes (or sshd start-ups, or sockets) in the same instant. A host
// the run has finished with is pruned on the connection it already has,
// in the background while later batches proceed, and then disconnected:
// open connections shrink as the rollout advances.

// eachLimit calls fn for every item, at most n at once, and returns the
// errors by position.
func eachLimit[T any](items []T, n int, fn func(T) error) []error {
	errs := make([]error, len(items))
	sem := make(chan struct{}, max(n, 1))
	var wg sync.WaitGroup
	for i, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = fn(it)
		}()
	}
	wg.Wait()
	return errs
}

// acquire takes a slot of sem, or gives up when ctx ends.
func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// openConn returns the host's connection, dialling it (at most
// HostConcurrency dials at once) if the run has none.
func (r *run) openConn(ctx context.Context, h plans.Host) (Host, error) {
	r.mu.Lock()
	c := r.conns[h.Name]
	r.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := r.dial(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("connect %s (%s): %w", h.Name, h.Address, err)
	}
	if r.e.d.Fence != nil {
		c = fencedHost{c, r.e.d.Fence}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.conns[h.Name]; old != nil {
		c.Close()
		return old, nil
	}
	r.conns[h.Name] = c
	return c, nil
}

// dial takes the warm-up's dial of h (StartWarm), or dials.
func (r *run) dial(ctx context.Context, h plans.Host) (Host, error) {
	if c, ok, err := r.warm.take(ctx, h); ok {
		return c, err
	}
	if err := acquire(ctx, r.dials); err != nil {
		return nil, err
	}
	defer func() { <-r.dials }()
	return r.connector.Connect(ctx, h)
}

// disconnect closes the host's connection, if the run has one.
func (r *run) disconnect(name string) {
	r.mu.Lock()
	c := r.conns[name]
	delete(r.conns, name)
	r.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// finishedWith is called when the host has nothing left to do in this run
// unless a later rollback comes back to it: a deploy's host that is done
// (or skipped) is pruned, then disconnected; any other is disconnected.
func (r *run) finishedWith(ctx context.Context, name string) {
	d, err := r.deployment()
	if err != nil {
		return
	}
	hp := d.Hosts[name]
	if hp == nil || !hp.Stage.Settled() {
		return
	}
	if r.kind == deploy.KindDeploy && hp.Phase == deploy.PhaseRollout &&
		(hp.Stage == deploy.StageDone || hp.Stage == deploy.StageSkipped) {
		r.startPrune(ctx, name)
		return
	}
	r.disconnect(name)
}

// startPrune prunes the host in the background, at most HostConcurrency
// hosts at once, then disconnects it. A host is pruned once per run; conn
// waits for it before anything else uses the host again.
func (r *run) startPrune(ctx context.Context, name string) {
	r.mu.Lock()
	if _, ok := r.pruning[name]; ok {
		r.mu.Unlock()
		return
	}
	done := make(chan struct{})
	r.pruning[name] = done
	r.mu.Unlock()
	r.prunes.Add(1)
	go func() {
		defer r.prunes.Done()
		defer close(done)
		defer r.disconnect(name)
		if err := acquire(ctx, r.pruneSlots); err != nil {
			return
		}
		defer func() { <-r.pruneSlots }()
		r.pruneHost(ctx, name)
	}()
}

// waitPrune waits until a prune of the host started by this run, if any,
// has finished with its connection.
func (r *run) waitPrune(ctx context.Context, name string) error {
	r.mu.Lock()
	done := r.pruning[name]
	r.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// prune, when a deployment has succeeded and before it is recorded so,
// prunes every settled host this run has not pruned yet (those a previous
// leader finished) and waits for every prune to end: once a deployment is
// finished, nothing touches its hosts any more.
func (r *run) prune(ctx context.Context, d deploy.Deployment) {
	for _, name := range d.HostNames() {
		if st := d.Hosts[name].Stage; st == deploy.StageDone || st == deploy.StageSkipped {
			r.startPrune(ctx, name)
		}
	}
	r.prunes.Wait()
}

// pruneHost removes releases beyond `keep` on the host, never the current
// or previous one. It is best effort: a failure is a warning.
func (r *run) pruneHost(ctx context.Context, name string) {
	h := r.hosts[name]
	rec := r.e.d.Store.HostRecord(name)
	script := pruneScript(path.Join(r.plan.Release.Path, "releases"), rec.Current, orDash(rec.Previous), r.plan.Release.Keep)
	c, err := r.openConn(ctx, h)
	if err == nil {
		_, err = r.execOn(ctx, c, h, deploy.StageDone, "", "prune old releases", script)
	}
	if err != nil {
		r.report(ctx, Event{Kind: EventWarning, Host: name, Message: "prune old releases", Error: err.Error()})
	}
}
