package orchestrator

import (
	"context"
	"sync"

	"github.com/drover-dev/drover/plans"
)

// Warm is the set-up a deploy can start before its deployment is recorded:
// inspecting the artifact, checking that the load balancer knows every
// host's server, and connecting to every host (at most
// plan.HostConcurrency() at once) and running the preflight script there.
// Nothing on a host or on the balancer changes: these are the preflight's
// reads, no more. Submit (SubmitOptions.Warm) takes the inspection, and the
// run of the deployment it records takes the connections (or the errors
// their dials failed with) and the balancer's verdicts; a preflight script
// that failed is run again by the run's preflight, which reports it. So
// the handshakes, login shells and preflight reads overlap the store's
// start and the artifact's checksum instead of following them.
// The run still decides: its preflight judges every host (disk against the
// artifact, the release it runs) before the first change.
//
// A Warm serves one Submit. Close it once the deployment's run is over:
// it closes connections no run took.
type Warm struct {
	plan *plans.Plan
	art  func() (keyedArtifact, error)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[string]*warmConn
	checks map[string]*warmCheck // by host: the balancer's Check of its server
}

type warmConn struct {
	host  plans.Host
	done  chan struct{} // closed when the dial and the preflight script ended
	h     Host
	err   error
	taken bool
	// preflight is the preflight script's output, when it passed (preOK).
	preflight string
	preOK     bool
}

// warmCheck is a balancer Check of one host's server.
type warmCheck struct {
	server string
	done   chan struct{}
	err    error
	used   bool
}

// StartWarm begins warming p's deployment in the background. connector and
// balancer are Deps.Connector and Deps.Balancer (either may be nil: that
// part is not warmed, nor is an agent host nor anything when the connector
// or balancer cannot be built: the run does it). A host that cannot be
// reached, or a server the balancer does not know, is reported by the
// run's preflight as the warm-up found it.
func StartWarm(p *plans.Plan, connector func(*plans.Plan) (Connector, error), balancer func(*plans.Plan) (Balancer, error)) *Warm {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Warm{plan: p, ctx: ctx, cancel: cancel, conns: map[string]*warmConn{}, checks: map[string]*warmCheck{}}
	w.art = sync.OnceValues(func() (keyedArtifact, error) {
		return inspectKeyed(p.Release.Artifact, p.Release.StripComponents)
	})
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		_, _ = w.art()
	}()
	w.startChecks(balancer)
	if connector == nil {
		return w
	}
	c, err := connector(p)
	if err != nil {
		return w
	}
	script := preflightScript(p.Release.Path)
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
			// The first command starts the shell session; one that fails
			// is the run's to redial and report.
			if out, err := runCaptured(ctx, wc.h, p.SSH.CommandTimeout, script); err == nil {
				wc.preflight, wc.preOK = out, true
			}
		}()
	}
	return w
}

// startChecks checks every host's server on the plan's balancer, at most
// plan.HostConcurrency() at once, apart from the connections: the balancer
// shares its reads among the hosts.
func (w *Warm) startChecks(balancer func(*plans.Plan) (Balancer, error)) {
	if balancer == nil {
		return
	}
	b, err := balancer(w.plan)
	if err != nil || b == nil {
		return
	}
	var hosts []*warmCheck
	for _, h := range w.plan.Hosts {
		if h.LBServer != "" {
			wc := &warmCheck{server: h.LBServer, done: make(chan struct{})}
			w.checks[h.Name] = wc
			hosts = append(hosts, wc)
		}
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		eachLimit(hosts, w.plan.HostConcurrency(), func(wc *warmCheck) error {
			defer close(wc.done)
			wc.err = b.Check(w.ctx, wc.server)
			return nil
		})
	}()
}

// checked returns the warm-up's Check of h's server, waiting for it if it
// is still under way: ok is false when there is none (the caller checks),
// else err is what Check said. A failed check is not done again: HAProxy
// already retried it (Config.RetryTimeout), and a balancer that is down
// would cost that twice. Each check serves once.
func (w *Warm) checked(ctx context.Context, h plans.Host) (ok bool, err error) {
	if w == nil {
		return false, nil
	}
	w.mu.Lock()
	wc := w.checks[h.Name]
	w.mu.Unlock()
	if wc == nil || wc.server != h.LBServer {
		return false, nil
	}
	select {
	case <-wc.done:
	case <-ctx.Done():
		return false, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if wc.used {
		return false, nil
	}
	wc.used = true
	return true, wc.err
}

// preflighted returns the output of the preflight script the warm-up ran
// on h's connection, once the run has taken that connection (take), when
// the script passed. Each output serves once.
func (w *Warm) preflighted(h plans.Host) (string, bool) {
	if w == nil {
		return "", false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	wc := w.conns[h.Name]
	if wc == nil || !wc.taken || !wc.preOK || wc.host.Address != h.Address {
		return "", false
	}
	wc.preOK = false
	return wc.preflight, true
}

// artifact waits for the inspection of the plan's artifact.
func (w *Warm) artifact() (keyedArtifact, error) { return w.art() }

// take hands over the warm-up's dial of h, waiting for it if it is still
// under way: its connection, or the error it failed with, which the run
// reports as it would its own (dialling again would make an unreachable
// host cost two connect timeouts). ok is false when there is nothing to
// take: h was not warmed, it is not the host that was warmed, or its dial
// was taken already; the caller dials.
func (w *Warm) take(ctx context.Context, h plans.Host) (c Host, ok bool, err error) {
	if w == nil {
		return nil, false, nil
	}
	w.mu.Lock()
	wc := w.conns[h.Name]
	w.mu.Unlock()
	if wc == nil || wc.host.Address != h.Address || wc.host.Transport != h.Transport {
		return nil, false, nil
	}
	select {
	case <-wc.done:
	case <-ctx.Done():
		return nil, false, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if wc.taken {
		return nil, false, nil
	}
	wc.taken = true
	return wc.h, true, wc.err
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
