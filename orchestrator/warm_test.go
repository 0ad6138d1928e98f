package orchestrator

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/plans"
)

// A warmed deploy connects to each host once and reads each host's
// preflight once: the run takes the warm connections, the preflight
// script's output and the balancer's checks, instead of dialling and
// reading again; a preflight script that failed in the warm-up the run's
// preflight runs again. Each connection is closed once.
func TestWarmConnectionsAndPreflightAreTakenByTheRun(t *testing.T) {
	for _, tc := range []struct {
		name       string
		scriptFail string // a host whose first command fails (the warm preflight)
	}{
		{name: "all warm"},
		{name: "a warm preflight script fails", scriptFail: "web3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet("web1", "web2", "web3", "web4")
			h := newHarness(t, f)
			p := h.plan("v2", plans.Size{N: 2}, 0)
			cb := &countingBalancer{Balancer: f, checks: map[string]int{}}
			h.engine.d.Balancer = func(*plans.Plan) (Balancer, error) { return cb, nil }
			connector := func(*plans.Plan) (Connector, error) {
				return connectorFunc(func(ctx context.Context, ph plans.Host) (Host, error) {
					c, err := f.Connect(ctx, ph)
					if err != nil || ph.Name != tc.scriptFail {
						return c, err
					}
					return &flakyHost{Host: c}, nil
				}), nil
			}
			w := StartWarm(p, connector, h.engine.d.Balancer)
			id, err := h.engine.Submit(context.Background(), p, SubmitOptions{Warm: w})
			if err != nil {
				t.Fatal(err)
			}
			w.wg.Wait() // the warm-up is over: only the run reads from here on
			before := preflightScripts(f)
			st, err := h.engine.Run(context.Background(), nil, id)
			w.Close()
			if err != nil || st != deploy.StateSucceeded {
				t.Fatalf("state %s, err %v", st, err)
			}
			after := preflightScripts(f)
			f.mu.Lock()
			defer f.mu.Unlock()
			cb.mu.Lock()
			defer cb.mu.Unlock()
			for _, n := range []string{"web1", "web2", "web3", "web4"} {
				if f.dials[n] != 1 || f.closes[n] != 1 {
					t.Errorf("%s: %d dials, %d closes, want 1 and 1", n, f.dials[n], f.closes[n])
				}
				// Scripts that ran (the failed one did not reach the host).
				wantBefore := 1
				if n == tc.scriptFail {
					wantBefore = 0 // the run's preflight runs it
				}
				if before[n] != wantBefore || after[n] != 1 {
					t.Errorf("%s: preflight scripts %d before the run and %d after, want %d and 1", n, before[n], after[n], wantBefore)
				}
				if c := cb.checks["web/"+n]; c != 1 {
					t.Errorf("web/%s: checked %d times, want 1", n, c)
				}
			}
		})
	}
}

// What the warm-up found wrong refuses the deploy, in the run's words, with
// every host untouched, and is not tried again: not a dial (an unreachable
// host would cost two connect timeouts), not a balancer check (HAProxy
// retried it already: a balancer down would cost that twice).
func TestWarmFailureRefusesOnce(t *testing.T) {
	for _, tc := range []struct {
		name, dialFail, checkFail, want string
	}{
		{name: "dial", dialFail: "web2", want: "connect web2 (web2:22): no route to host"},
		{name: "balancer check", checkFail: "web/web2", want: "web2: load balancer: no such server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet("web1", "web2")
			h := newHarness(t, f)
			cb := &countingBalancer{Balancer: f, checks: map[string]int{}, fail: tc.checkFail}
			h.engine.d.Balancer = func(*plans.Plan) (Balancer, error) { return cb, nil }
			var mu sync.Mutex
			attempts := map[string]int{}
			h.engine.d.Connector = func(*plans.Plan) (Connector, error) {
				return connectorFunc(func(ctx context.Context, ph plans.Host) (Host, error) {
					mu.Lock()
					attempts[ph.Name]++
					mu.Unlock()
					if ph.Name == tc.dialFail {
						return nil, errors.New("no route to host")
					}
					return f.Connect(ctx, ph)
				}), nil
			}
			p := h.plan("v2", plans.Size{N: 1}, 0)
			w := StartWarm(p, h.engine.d.Connector, h.engine.d.Balancer)
			id, err := h.engine.Submit(context.Background(), p, SubmitOptions{Warm: w})
			if err != nil {
				t.Fatal(err)
			}
			st, err := h.engine.Run(context.Background(), nil, id)
			w.Close()
			if !errors.Is(err, ErrPreflight) || st != deploy.StateFailed {
				t.Fatalf("state %s, err %v: want failed, ErrPreflight", st, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
			mu.Lock()
			defer mu.Unlock()
			cb.mu.Lock()
			defer cb.mu.Unlock()
			if attempts["web2"] != 1 || cb.checks["web/web2"] != 1 {
				t.Errorf("web2: %d dials and %d checks, want 1 and 1", attempts["web2"], cb.checks["web/web2"])
			}
			untouched(t, f)
		})
	}
}

// untouched fails unless the fleet saw only reads: no balancer change, no
// upload, no command but the preflight script.
func untouched(t *testing.T, f *fleet) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.lbLog) > 0 {
		t.Errorf("balancer changed: %v", f.lbLog)
	}
	for n, fh := range f.hosts {
		if fh.uploads > 0 {
			t.Errorf("%s: %d uploads", n, fh.uploads)
		}
		for _, c := range fh.cmds {
			if !strings.Contains(c, "df -Pk") {
				t.Errorf("%s ran %q", n, c)
			}
		}
	}
}

// preflightScripts counts the preflight scripts each host ran.
func preflightScripts(f *fleet) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for n, fh := range f.hosts {
		for _, c := range fh.cmds {
			if strings.Contains(c, "df -Pk") {
				out[n]++
			}
		}
	}
	return out
}

// A deploy refused before its run (another of its name is running)
// leaves nothing open: Close closes what was warmed.
func TestWarmClosedWhenSubmitIsRefused(t *testing.T) {
	f := newFleet("web1", "web2")
	h := newHarness(t, f)
	held := h.plan("v1", plans.Size{N: 1}, 0)
	if _, err := h.engine.Submit(context.Background(), held, SubmitOptions{}); err != nil {
		t.Fatal(err)
	}
	p := h.plan("v2", plans.Size{N: 1}, 0)
	w := StartWarm(p, func(*plans.Plan) (Connector, error) { return f, nil }, h.engine.d.Balancer)
	_, err := h.engine.Submit(context.Background(), p, SubmitOptions{Warm: w})
	if !errors.Is(err, deploy.ErrNameInUse) {
		t.Fatalf("submit over a running deployment: err = %v, want ErrNameInUse", err)
	}
	w.Close()
	untouched(t, f)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range []string{"web1", "web2"} {
		if f.dials[n] != f.closes[n] {
			t.Errorf("%s: %d dials, %d closes", n, f.dials[n], f.closes[n])
		}
	}
}

// A warm-up serves the plan it was started for only.
func TestWarmForAnotherPlanRefused(t *testing.T) {
	f := newFleet("web1")
	h := newHarness(t, f)
	w := StartWarm(h.plan("v1", plans.Size{N: 1}, 0), nil, nil)
	defer w.Close()
	_, err := h.engine.Submit(context.Background(), h.plan("v2", plans.Size{N: 1}, 0), SubmitOptions{Warm: w})
	if err == nil || !strings.Contains(err.Error(), "another plan") {
		t.Fatalf("err = %v", err)
	}
}

type connectorFunc func(context.Context, plans.Host) (Host, error)

func (f connectorFunc) Connect(ctx context.Context, h plans.Host) (Host, error) { return f(ctx, h) }

// flakyHost fails its first command, as a session that broke would.
type flakyHost struct {
	Host
	failed bool
}

func (h *flakyHost) Run(ctx context.Context, cmd string, out io.Writer) error {
	if !h.failed {
		h.failed = true
		return errors.New("session broke")
	}
	return h.Host.Run(ctx, cmd, out)
}

// countingBalancer counts Check calls by server; the server named fail
// is unknown.
type countingBalancer struct {
	Balancer
	mu     sync.Mutex
	checks map[string]int
	fail   string
}

func (b *countingBalancer) Check(ctx context.Context, server string) error {
	b.mu.Lock()
	b.checks[server]++
	b.mu.Unlock()
	if server == b.fail {
		return errors.New("no such server")
	}
	return b.Balancer.Check(ctx, server)
}
