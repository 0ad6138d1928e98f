package orchestrator

import (
	"context"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/fence"
	"github.com/drover-dev/drover/plans"
)

// A leader deposed in the middle of a rollout makes no further change to
// any host or to the balancer, and every change it made carried its term.
func TestFencingStopsADeposedLeader(t *testing.T) {
	f := newFleet(hostsNamed(6)...)
	h := newHarness(t, f)
	var deposed atomic.Bool
	var checks atomic.Int64
	var terms []uint64
	h.engine.d.Fence = func(ctx context.Context) (uint64, error) {
		checks.Add(1)
		if deposed.Load() {
			return 0, errors.New("leadership lost")
		}
		return 7, nil
	}
	// Record the terms the hosts see.
	conn := h.engine.d.Connector
	h.engine.d.Connector = func(p *plans.Plan) (Connector, error) {
		c, err := conn(p)
		return termRecorder{c, &terms, f}, err
	}
	var before int
	f.onStage = func(host string, st deploy.Stage, ph deploy.Phase) {
		if host == "web3" && st == deploy.StageInstall && !deposed.Load() {
			f.mu.Lock()
			before = sideEffects(f)
			f.mu.Unlock()
			deposed.Store(true)
		}
	}
	_, _, err := h.deploy(h.plan("v2", plans.Size{N: 2}, 0), nil)
	if !errors.Is(err, fence.ErrFenced) {
		t.Fatalf("run error = %v, want fence.ErrFenced", err)
	}
	f.mu.Lock()
	after := sideEffects(f)
	f.mu.Unlock()
	if after != before {
		t.Errorf("side effects after losing leadership: %d before, %d after", before, after)
	}
	if checks.Load() == 0 {
		t.Fatal("fence never consulted")
	}
	for _, term := range terms {
		if term != 7 {
			t.Fatalf("a host action carried term %d, want 7", term)
		}
	}
	if len(terms) == 0 {
		t.Fatal("no host action recorded its term")
	}
}

// sideEffects counts what changed hosts and the balancer. Callers hold f.mu.
func sideEffects(f *fleet) int {
	n := len(f.lbLog)
	for _, h := range f.hosts {
		n += len(h.cmds) + h.uploads
	}
	return n
}

type termRecorder struct {
	Connector
	terms *[]uint64
	f     *fleet
}

func (c termRecorder) Connect(ctx context.Context, h plans.Host) (Host, error) {
	host, err := c.Connector.Connect(ctx, h)
	if err != nil {
		return nil, err
	}
	return termHostRecorder{host, c}, nil
}

type termHostRecorder struct {
	Host
	c termRecorder
}

func (h termHostRecorder) Run(ctx context.Context, cmd string, out io.Writer) error {
	h.c.f.mu.Lock()
	*h.c.terms = append(*h.c.terms, fence.Term(ctx))
	h.c.f.mu.Unlock()
	return h.Host.Run(ctx, cmd, out)
}

// Supervise resumes a recorded deployment from the store alone, stops at
// once when its context ends (leadership lost), and a second leader
// finishes it without installing again on any host already done.
func TestSuperviseResumesAndStops(t *testing.T) {
	f := newFleet(hostsNamed(6)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	id, err := h.engine.Submit(context.Background(), h.plan("v2", plans.Size{N: 2}, 0), SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uploads := func() map[string]int {
		f.mu.Lock()
		defer f.mu.Unlock()
		m := map[string]int{}
		for n, fh := range f.hosts {
			m[n] = fh.uploads
		}
		return m
	}
	base := uploads()

	// First leader: deposed when web3 starts.
	ctx, cancel := context.WithCancel(context.Background())
	f.onStage = func(host string, st deploy.Stage, ph deploy.Phase) {
		if host == "web3" && st == deploy.StageDrain {
			cancel()
		}
	}
	done := make(chan struct{})
	go func() { h.engine.Supervise(ctx, h.store); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Supervise did not return after its context ended")
	}
	d, _ := h.store.Deployment(id)
	if d.State.Terminal() {
		t.Fatalf("deployment ended (%s) although its leader stopped mid-way", d.State)
	}
	f.onStage = nil

	// Second leader: finishes it.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go h.engine.Supervise(ctx2, h.store)
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, _ = h.store.Deployment(id)
		if d.State.Terminal() || time.Now().After(deadline) {
			break
		}
		select {
		case <-h.store.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if d.State != deploy.StateSucceeded {
		t.Fatalf("state %s (%s), want succeeded", d.State, d.Error)
	}
	for n, v := range h.running() {
		if v != "v2" {
			t.Errorf("%s runs %q, want v2", n, v)
		}
	}
	for n, c := range uploads() {
		if got := c - base[n]; got < 1 || (n != "web3" && n != "web4" && got != 1) {
			t.Errorf("%s: %d uploads of v2, want exactly 1 (hosts done before the failover must not be installed again)", n, got)
		}
	}
}

// A deployment the engine cannot run (here: its artifact was deleted)
// still ends when an operator aborts it, instead of being retried forever
// with its hosts locked.
func TestSuperviseAbortsAStuckDeployment(t *testing.T) {
	f := newFleet(hostsNamed(2)...)
	h := newHarness(t, f)
	p := h.plan("v1", plans.Size{N: 1}, 0)
	id, err := h.engine.Submit(context.Background(), p, SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p.Release.Artifact); err != nil {
		t.Fatal(err)
	}
	if err := h.store.Apply(context.Background(), &deploy.Request{ID: id, Abort: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.engine.Supervise(ctx, h.store)
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, _ := h.store.Deployment(id)
		if d.State == deploy.StateAborted {
			if rec := h.store.HostRecord("web1"); rec.Lock != "" {
				t.Fatalf("web1 still locked by %s", rec.Lock)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %s, want aborted", d.State)
		}
		select {
		case <-h.store.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
