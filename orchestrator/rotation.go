package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/ctxtime"
	"github.com/drover-dev/drover/internal/notify"
	"github.com/drover-dev/drover/plans"
)

// ErrMinInService means a host was not drained because its backend would
// have kept fewer servers in rotation than strategy.min_in_service, and no
// host in flight was going to come back. The host is left untouched.
var ErrMinInService = errors.New("min_in_service")

// ErrOutOfRotation means a deployment ended with hosts the load balancer
// does not route to: it is recorded failed, never succeeded.
var ErrOutOfRotation = errors.New("out of rotation")

// rotation keeps strategy.min_in_service during a run: before a host leaves
// rotation, the servers of its backend that stay in rotation (as every
// balancer instance reports them, so servers already down do not count)
// must number at least the minimum. Hosts of one batch share the count, so
// the check and the reservation happen under one lock; a host that would
// break the minimum waits for a host in flight to come back, and is refused
// when none is in flight.
type rotation struct {
	mu      sync.Mutex
	out     map[string]bool // servers this run reserved and has not released
	changed notify.Signal   // fires at each release
}

// admit reserves h's way out of rotation, waiting while hosts in flight
// hold the backend at its minimum. It changes nothing on the balancer.
func (r *run) admit(ctx context.Context, h plans.Host) error {
	backend := h.Backend()
	need := r.plan.MinInService(backend)
	if r.lb == nil || backend == "" || need == 0 {
		return nil
	}
	waited := false
	for {
		r.rot.mu.Lock()
		states, err := r.lb.Backend(ctx, backend)
		if err != nil {
			r.rot.mu.Unlock()
			return fmt.Errorf("count the servers of backend %s in rotation: %w", backend, err)
		}
		left, inFlight := 0, false
		var down []string
		for _, s := range states.Servers() {
			switch {
			case s == h.LBServer:
			case r.rot.out[s]:
				inFlight = true
			case states.InRotation(s):
				left++
			default:
				down = append(down, s)
			}
		}
		// A server already out (drained by a failed stage, DOWN) takes
		// nothing away by being drained again.
		self := !r.rot.out[h.LBServer] && states.InRotation(h.LBServer)
		if !self || left >= need {
			r.rot.out[h.LBServer] = true
			r.rot.mu.Unlock()
			return nil
		}
		wake := r.rot.changed.C()
		r.rot.mu.Unlock()
		if !inFlight {
			already := "none"
			if len(down) > 0 {
				already = strings.Join(down, ", ")
			}
			return fmt.Errorf("%w: draining %s would leave %d of backend %s's %d servers in rotation, fewer than strategy.min_in_service=%d (already out: %s)",
				ErrMinInService, h.LBServer, left, backend, len(states.Servers()), need, already)
		}
		if !waited {
			waited = true
			r.report(ctx, Event{Kind: EventNote, Host: h.Name,
				Message: fmt.Sprintf("waits: backend %s has %d servers in rotation besides it, strategy.min_in_service=%d", backend, left, need)})
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release ends h's reservation: from now on the balancer's own view counts.
func (r *run) release(h plans.Host) {
	r.rot.mu.Lock()
	had := r.rot.out[h.LBServer]
	delete(r.rot.out, h.LBServer)
	r.rot.mu.Unlock()
	if had {
		r.rot.changed.Fire()
	}
}

// outOfRotation lists the plan's hosts that some balancer instance does not
// route to, as "web1 (MAINT)". A read that fails is tried again briefly
// (HAProxy drops its socket while it reloads), then reported.
func (r *run) outOfRotation(ctx context.Context) ([]string, error) {
	if r.lb == nil {
		return nil, nil
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			if err := ctxtime.Sleep(ctx, 200*time.Millisecond); err != nil {
				return nil, err
			}
		}
		var out []string
		out, err = r.readOutOfRotation(ctx)
		if err == nil {
			return out, nil
		}
	}
	return nil, err
}

func (r *run) readOutOfRotation(ctx context.Context) ([]string, error) {
	byBackend := map[string]LBStates{}
	var out []string
	for _, h := range r.plan.Hosts {
		b := h.Backend()
		if b == "" {
			continue
		}
		states, ok := byBackend[b]
		if !ok {
			var err error
			if states, err = r.lb.Backend(ctx, b); err != nil {
				return nil, fmt.Errorf("read backend %s: %w", b, err)
			}
			byBackend[b] = states
		}
		if !states.InRotation(h.LBServer) {
			mine := states.Of(h.LBServer)
			word := "unknown to the load balancer"
			if len(mine) > 0 {
				word = mine.String()
			}
			out = append(out, fmt.Sprintf("%s (%s)", h.Name, word))
		}
	}
	return out, nil
}
