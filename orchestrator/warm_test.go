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
// script's output and the balancer's checks that passed, instead of
// dialling and reading again; what the warm-up could not read (a dial, a
// script or a check that failed) the run's preflight does itself. Each
// connection is closed once.
func TestWarmConnectionsAndPreflightAreTakenByTheRun(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dialFail   string // a host whose warm dial fails (the run dials again)
		scriptFail string // a host whose first command fails (the warm preflight)
		checkFail  string // a server whose first Check fails
		wantChecks map[string]int
	}{
		{name: "all warm"},
		{name: "a warm dial fails", dialFail: "web2"},
		{name: "a warm preflight script fails", scriptFail: "web3"},
		{name: "a warm balancer check fails", checkFail: "web/web4", wantChecks: map[string]int{"web/web4": 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet("web1", "web2", "web3", "web4")
			h := newHarness(t, f)
			p := h.plan("v2", plans.Size{N: 2}, 0)
			cb := &countingBalancer{Balancer: f, checks: map[string]int{}, failFirst: tc.checkFail}
			h.engine.d.Balancer = func(*plans.Plan) (Balancer, error) { return cb, nil }
			connector := func(*plans.Plan) (Connector, error) {
				return connectorFunc(func(ctx context.Context, ph plans.Host) (Host, error) {
					if ph.Name == tc.dialFail {
						return nil, errors.New("warm dial refused")
					}
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
			for _, n := range []string{"web1", "web2", "web3", "web4"} {
				if f.dials[n] != 1 || f.closes[n] != 1 {
					t.Errorf("%s: %d dials, %d closes, want 1 and 1", n, f.dials[n], f.closes[n])
				}
				// Scripts that ran (the failed one did not reach the host).
				wantBefore := 1
				if n == tc.dialFail || n == tc.scriptFail {
					wantBefore = 0 // the run's preflight runs it
				}
				if before[n] != wantBefore || after[n] != 1 {
					t.Errorf("%s: preflight scripts %d before the run and %d after, want %d and 1", n, before[n], after[n], wantBefore)
				}
			}
			cb.mu.Lock()
			defer cb.mu.Unlock()
			for _, n := range []string{"web1", "web2", "web3", "web4"} {
				server := "web/" + n
				want := tc.wantChecks[server]
				if want == 0 {
					want = 1
				}
				if cb.checks[server] != want {
					t.Errorf("%s: checked %d times, want %d", server, cb.checks[server], want)
				}
			}
		})
	}
}

// A failure the warm-up saw and the run's preflight sees again refuses
// the deploy, in the run's words, with every host untouched.
func TestWarmPreflightFailureStillRefuses(t *testing.T) {
	f := newFleet("web1", "web2")
	h := newHarness(t, f)
	f.checkFail = errors.New("no such server")
	p := h.plan("v2", plans.Size{N: 1}, 0)
	w := StartWarm(p, func(*plans.Plan) (Connector, error) { return f, nil }, h.engine.d.Balancer)
	id, err := h.engine.Submit(context.Background(), p, SubmitOptions{Warm: w})
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.engine.Run(context.Background(), nil, id)
	w.Close()
	if !errors.Is(err, ErrPreflight) || st != deploy.StateFailed {
		t.Fatalf("state %s, err %v: want failed, ErrPreflight", st, err)
	}
	if !strings.Contains(err.Error(), "load balancer") || !strings.Contains(err.Error(), "no such server") {
		t.Errorf("err = %v: want the balancer's cause", err)
	}
	untouched(t, f)
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

// countingBalancer counts Check calls by server; the first Check of
// failFirst fails.
type countingBalancer struct {
	Balancer
	mu        sync.Mutex
	checks    map[string]int
	failFirst string
}

func (b *countingBalancer) Check(ctx context.Context, server string) error {
	b.mu.Lock()
	b.checks[server]++
	n := b.checks[server]
	b.mu.Unlock()
	if server == b.failFirst && n == 1 {
		return errors.New("runtime API busy")
	}
	return b.Balancer.Check(ctx, server)
}
