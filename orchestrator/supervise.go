package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/drover-dev/drover/deploy"
)

// Deployments is what Supervise watches: the replicated list and a signal
// on every change.
type Deployments interface {
	Deployments() []deploy.Deployment
	Changed() <-chan struct{}
}

// Supervise runs every running deployment of the store until ctx ends:
// those recorded before (a new leader resumes them from the replicated
// state alone) and those recorded while it runs. A coordinator calls it
// when it gains leadership and cancels ctx the moment it loses it, which
// stops every run at once (fencing stops any action already under way).
// It returns when ctx ends and every run has returned.
func (e *Engine) Supervise(ctx context.Context, w Deployments) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		active = map[string]bool{}
		// retry holds deployments whose last run failed without ending
		// them (an artifact not yet fetched, a store hiccup): they are
		// tried again after a backoff, not on every change of the store.
		retry = map[string]time.Time{}
		delay = map[string]time.Duration{}
		wake  = make(chan struct{}, 1)
	)
	defer wg.Wait()
	for {
		changed := w.Changed()
		now := time.Now()
		var next time.Time
		for _, d := range w.Deployments() {
			if !runnable(d) {
				continue
			}
			mu.Lock()
			busy := active[d.ID]
			at, waiting := retry[d.ID]
			if !busy && waiting && now.Before(at) {
				if next.IsZero() || at.Before(next) {
					next = at
				}
				busy = true
			}
			if !busy {
				active[d.ID] = true
				delete(retry, d.ID)
			}
			mu.Unlock()
			if busy {
				continue
			}
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				_, err := e.Run(ctx, nil, id)
				if err != nil && ctx.Err() == nil {
					err = e.abortStuck(ctx, id, err)
				}
				mu.Lock()
				defer mu.Unlock()
				delete(active, id)
				if err != nil && ctx.Err() == nil && !errors.Is(err, ErrNotResumable) {
					d := min(max(2*delay[id], time.Second), 30*time.Second)
					delay[id] = d
					retry[id] = time.Now().Add(d)
					msg := fmt.Sprintf("run stopped: %v; retrying in %s", err, d)
					e.d.Events(Event{Time: e.d.Now(), Deployment: id, Kind: EventWarning, Message: msg})
					// Recorded too, for whoever watches it (best effort).
					_ = e.d.Store.Apply(ctx, &deploy.Report{ID: id, Kind: deploy.EvWarning, Message: msg, At: e.d.Now().UTC()})
				} else {
					delete(delay, id)
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}(d.ID)
		}
		var timer <-chan time.Time
		if !next.IsZero() {
			timer = time.After(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-wake:
		case <-timer:
		}
	}
}

// runnable says whether a deployment needs an engine: running or rolling
// back. Paused ones wait for an operator's resume.
func runnable(d deploy.Deployment) bool {
	return d.State == deploy.StateRunning || d.State == deploy.StateRollingBack
}

// abortStuck ends a deployment that an operator asked to abort but that
// the engine cannot run (its artifact lost everywhere, its plan
// unreadable) while every host is settled: no engine will reach a safe
// point to honour the request, and nothing is acting on its hosts. It
// returns nil once the deployment is ended, else runErr.
func (e *Engine) abortStuck(ctx context.Context, id string, runErr error) error {
	d, err := e.d.Store.Deployment(id)
	if err != nil || !deploy.AbortNow(&d, deploy.Stuck) {
		return runErr
	}
	if err := e.RestoreWeights(ctx, id); err != nil {
		return errors.Join(runErr, err) // ended only with every weight back
	}
	err = e.d.Store.Apply(ctx, &deploy.SetState{ID: id, State: deploy.StateAborted,
		Error: fmt.Sprintf("%s; the engine could not run it: %v", deploy.AbortedByOperator, runErr), At: e.d.Now().UTC()})
	if err != nil {
		return runErr
	}
	e.d.Events(Event{Time: e.d.Now(), Deployment: id, Kind: EventFinished, State: deploy.StateAborted, Error: runErr.Error()})
	return nil
}
