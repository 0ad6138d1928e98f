package orchestrator

import (
	"context"
	"sync"

	"github.com/drover-dev/drover/plans"
)

// Warm is the set-up a deploy can start before its deployment is recorded:
// inspecting the artifact, and connecting to every host (at most
// plan.HostConcurrency() at once) with its shell session started. Nothing
// on a host changes: it only connects. Submit (SubmitOptions.Warm) takes
// the inspection, and the run of the deployment it records takes the
// connections, so the handshakes and login shells of the preflight overlap
// the store's start and the artifact's checksum instead of following them.
//
// A Warm serves one Submit. Close it once the deployment's run is over:
// it closes connections no run took.
type Warm struct {
	plan *plans.Plan
	art  func() (keyedArtifact, error)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[string]*warmConn
}

type warmConn struct {
	host  plans.Host
	done  chan struct{} // closed when the dial ended
	h     Host
	err   error
	taken bool
}

// preparer is a host connection that can start its command session ahead
// of the first command (ssh.Client.Prepare).
type preparer interface {
	Prepare(ctx context.Context) error
}

// StartWarm begins warming p's deployment in the background. connector is
// Deps.Connector; hosts it cannot reach (or whose transport it does not
// serve) are simply not warmed: the run dials them and reports why.
func StartWarm(p *plans.Plan, connector func(*plans.Plan) (Connector, error)) *Warm {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Warm{plan: p, ctx: ctx, cancel: cancel, conns: map[string]*warmConn{}}
	w.art = sync.OnceValues(func() (keyedArtifact, error) {
		return inspectKeyed(p.Release.Artifact, p.Release.StripComponents)
	})
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		_, _ = w.art()
	}()
	if connector == nil {
		return w
	}
	c, err := connector(p)
	if err != nil {
		return w
	}
	sem := make(chan struct{}, p.HostConcurrency())
	for _, h := range p.Hosts {
		if h.Transport == plans.TransportAgent {
			continue
		}
		wc := &warmConn{host: h, done: make(chan struct{})}
		w.conns[h.Name] = wc
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer close(wc.done)
			if acquire(ctx, sem) != nil {
				wc.err = ctx.Err()
				return
			}
			defer func() { <-sem }()
			wc.h, wc.err = c.Connect(ctx, h)
			if wc.err != nil {
				return
			}
			if pr, ok := wc.h.(preparer); ok {
				_ = pr.Prepare(ctx) // the first command finds out about a session that fails
			}
		}()
	}
	return w
}

// artifact waits for the inspection of the plan's artifact.
func (w *Warm) artifact() (keyedArtifact, error) { return w.art() }

// take hands over the warmed connection to h, waiting for its dial if it
// is still under way. ok is false when there is none to take: h was not
// warmed, its dial failed (the caller dials again and reports the error
// in its own words), or it is not the host that was warmed.
func (w *Warm) take(ctx context.Context, h plans.Host) (c Host, ok bool) {
	if w == nil {
		return nil, false
	}
	w.mu.Lock()
	wc := w.conns[h.Name]
	w.mu.Unlock()
	if wc == nil || wc.host.Address != h.Address || wc.host.Transport != h.Transport {
		return nil, false
	}
	select {
	case <-wc.done:
	case <-ctx.Done():
		return nil, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if wc.err != nil || wc.taken {
		return nil, false
	}
	wc.taken = true
	return wc.h, true
}

// Close stops what is still warming and closes the connections no run took.
func (w *Warm) Close() {
	if w == nil {
		return
	}
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, wc := range w.conns {
		if wc.h != nil && !wc.taken {
			wc.h.Close()
			wc.taken = true
		}
	}
}

// keyedArtifact is an inspected archive with the key the engine caches it
// under.
type keyedArtifact struct {
	key artifactKey
	Artifact
}

func inspectKeyed(path string, strip int) (keyedArtifact, error) {
	k, err := keyOf(path, strip)
	if err != nil {
		return keyedArtifact{}, err
	}
	a, err := InspectArtifact(path, strip)
	return keyedArtifact{k, a}, err
}
