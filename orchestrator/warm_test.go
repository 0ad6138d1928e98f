package orchestrator

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/plans"
)

// A warmed deploy connects to each host once: the run takes the warm
// connections (started with their sessions) instead of dialling again, and
// each is closed once.
func TestWarmConnectionsAreTakenByTheRun(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dialFail string // a host whose warm dial fails (the run dials again)
	}{
		{name: "all warm"},
		{name: "a warm dial fails", dialFail: "web2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet("web1", "web2", "web3", "web4")
			h := newHarness(t, f)
			p := h.plan("v2", plans.Size{N: 2}, 0)
			prepared := map[string]int{}
			connector := func(*plans.Plan) (Connector, error) {
				return connectorFunc(func(ctx context.Context, ph plans.Host) (Host, error) {
					if ph.Name == tc.dialFail {
						return nil, errors.New("warm dial refused")
					}
					c, err := f.Connect(ctx, ph)
					if err != nil {
						return nil, err
					}
					return preparedHost{c, func() { f.mu.Lock(); prepared[ph.Name]++; f.mu.Unlock() }}, nil
				}), nil
			}
			w := StartWarm(p, connector)
			id, err := h.engine.Submit(context.Background(), p, SubmitOptions{Warm: w})
			if err != nil {
				t.Fatal(err)
			}
			st, err := h.engine.Run(context.Background(), nil, id)
			w.Close()
			if err != nil || st != deploy.StateSucceeded {
				t.Fatalf("state %s, err %v", st, err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, n := range []string{"web1", "web2", "web3", "web4"} {
				if f.dials[n] != 1 || f.closes[n] != 1 {
					t.Errorf("%s: %d dials, %d closes, want 1 and 1", n, f.dials[n], f.closes[n])
				}
				want := 1
				if n == tc.dialFail {
					want = 0
				}
				if prepared[n] != want {
					t.Errorf("%s: session prepared %d times, want %d", n, prepared[n], want)
				}
			}
		})
	}
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
	w := StartWarm(p, func(*plans.Plan) (Connector, error) { return f, nil })
	_, err := h.engine.Submit(context.Background(), p, SubmitOptions{Warm: w})
	if !errors.Is(err, deploy.ErrNameInUse) {
		t.Fatalf("submit over a running deployment: err = %v, want ErrNameInUse", err)
	}
	w.Close()
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
	w := StartWarm(h.plan("v1", plans.Size{N: 1}, 0), nil)
	defer w.Close()
	_, err := h.engine.Submit(context.Background(), h.plan("v2", plans.Size{N: 1}, 0), SubmitOptions{Warm: w})
	if err == nil || !strings.Contains(err.Error(), "another plan") {
		t.Fatalf("err = %v", err)
	}
}

type connectorFunc func(context.Context, plans.Host) (Host, error)

func (f connectorFunc) Connect(ctx context.Context, h plans.Host) (Host, error) { return f(ctx, h) }

// preparedHost counts Prepare calls.
type preparedHost struct {
	Host
	prepare func()
}

func (p preparedHost) Prepare(context.Context) error { p.prepare(); return nil }
