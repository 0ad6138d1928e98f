package orchestrator

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/analysis"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/plans"
)

// weighted is the fake fleet with server weights (every server starts at
// 1, as HAProxy's default). SetWeight checks that the store recorded the
// weights to restore before any changes.
type weighted struct {
	*fleet
	h         *harness
	mu        sync.Mutex
	w         map[string]int
	unrecord  []string // servers whose weight changed while the store had none to restore
	history   []map[string]int
	onSetting func() // before each SetWeight
}

func newWeighted(h *harness) *weighted {
	w := &weighted{fleet: h.f, h: h, w: map[string]int{}}
	for n := range h.f.hosts {
		w.w["web/"+n] = 1
	}
	h.engine.d.Balancer = func(*plans.Plan) (Balancer, error) { return w, nil }
	return w
}

func (w *weighted) Weight(_ context.Context, server string) (int, int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w[server], 1, nil
}

func (w *weighted) SetWeight(_ context.Context, server string, n int) error {
	w.mu.Lock()
	on := w.onSetting
	w.mu.Unlock()
	if on != nil {
		on()
	}
	recorded := false
	for _, d := range w.h.store.Deployments() {
		if d.Weights != nil && !d.State.Terminal() {
			_, recorded = d.Weights.Restore[server]
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !recorded && n != w.w[server] && n != 1 {
		w.unrecord = append(w.unrecord, server)
	}
	w.w[server] = n
	w.history = append(w.history, maps.Clone(w.w))
	return nil
}

func (w *weighted) weights() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.w)
}

// allAt fails unless every server is at weight 1 and the store holds no
// weights to restore.
func (w *weighted) allAt1(t *testing.T, id string) {
	t.Helper()
	for s, n := range w.weights() {
		if n != 1 {
			t.Errorf("%s at weight %d at the end, want 1: %v", s, n, w.weights())
		}
	}
	if d, _ := w.h.store.Deployment(id); d.Weights != nil {
		t.Errorf("the store still holds weights to restore: %+v", d.Weights)
	}
	if len(w.unrecord) > 0 {
		t.Errorf("weights changed before they were recorded: %v", w.unrecord)
	}
}

// canaryPlan is a 4-host plan of version with a canary of 1 host at 10%.
func canaryPlan(h *harness, version string, duration time.Duration) *plans.Plan {
	p := h.plan(version, plans.Size{N: 2}, 0)
	p.Strategy.Canary = &plans.Canary{Hosts: plans.Size{N: 1}, Weight: 10, Duration: duration}
	return p
}

func TestCanaryWatchedAtItsWeightBeforeTheBatches(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	w := newWeighted(h)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	var during []map[string]int // the weights at each canary sample
	j := &judge{verdict: failsOn("never")}
	j.onSample = func() {
		if ts := j.targets(); len(ts[len(ts)-1].Hosts) == 1 {
			during = append(during, w.weights())
		}
	}
	p := gated(h, canaryPlan(h, "v2", 30*time.Millisecond), j)
	id, st, err := h.deploy(p, nil)
	if err != nil || st != deploy.StateSucceeded {
		t.Fatalf("state %s, err %v", st, err)
	}
	d, _ := h.store.Deployment(id)
	if !slices.Equal(d.Batches[0], []string{"web1"}) || !slices.Equal(d.AnalysisPassed, []int{0, 1, 2}) {
		t.Errorf("batches %v, analysis passed %v", d.Batches, d.AnalysisPassed)
	}
	// 1 of 1+3+3+3: 10%.
	want := map[string]int{"web/web1": 1, "web/web2": 3, "web/web3": 3, "web/web4": 3}
	if len(during) == 0 || !maps.Equal(during[0], want) {
		t.Errorf("weights during the canary = %v, want %v", during, want)
	}
	if first := j.targets()[0]; !slices.Equal(first.New, []string{"web/web1"}) || len(first.Old) != 3 {
		t.Errorf("the canary was judged as %+v", first)
	}
	w.allAt1(t, id)
	// Batch 2 drained only after the weights were back.
	var canaryEvents []Event
	h.mu.Lock()
	for _, ev := range h.events {
		if ev.Kind == EventCanary {
			canaryEvents = append(canaryEvents, ev)
		}
	}
	h.mu.Unlock()
	if len(canaryEvents) != 2 || canaryEvents[0].Share != 10 || !maps.Equal(canaryEvents[0].Weights, want) || canaryEvents[1].Share != 0 {
		t.Errorf("canary events = %+v", canaryEvents)
	}
}

func TestCanaryWithoutGatesWaitsItsDuration(t *testing.T) {
	f := newFleet(hostsNamed(3)...)
	h := newHarness(t, f)
	w := newWeighted(h)
	h.mustDeploy(h.plan("v1", plans.Size{N: 1}, 0))
	p := canaryPlan(h, "v2", 20*time.Millisecond)
	id, st, err := h.deploy(p, nil)
	if err != nil || st != deploy.StateSucceeded {
		t.Fatalf("state %s, err %v", st, err)
	}
	if len(w.history) < 2 {
		t.Errorf("weights never changed: %v", w.history)
	}
	w.allAt1(t, id)
	allOn(t, h.running(), "v2")
}

func TestFailedCanaryRollsBackWithWeightsRestored(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	w := newWeighted(h)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	j := &judge{verdict: failsOn("v2")}
	id, st, err := h.deploy(failingEarly(gated(h, canaryPlan(h, "v2", time.Minute), j)), nil)
	if err != nil || st != deploy.StateRolledBack {
		t.Fatalf("state %s, err %v", st, err)
	}
	allOn(t, h.running(), "v1")
	d, _ := h.store.Deployment(id)
	if got := failedHosts(d); !slices.Equal(got, []string{"web1"}) {
		t.Errorf("failed hosts = %v, want the canary", got)
	}
	if e := d.Hosts["web1"].Error; !strings.Contains(e, "analysis of the canary (batch 1): gate errors failed 2 samples in a row") {
		t.Errorf("web1 error = %q", e)
	}
	for _, n := range []string{"web2", "web3", "web4"} {
		if d.Hosts[n].Touched {
			t.Errorf("%s was touched after the failed canary", n)
		}
	}
	w.allAt1(t, id)
}

// An operator's abort during the canary stops its watch at once: the
// weights go back and the deployment ends aborted, no batch started.
func TestAbortDuringTheCanaryRestoresWeights(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	w := newWeighted(h)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	var once sync.Once
	j := &judge{verdict: func(analysis.Target) analysis.Verdict { return analysis.Inconclusive }}
	j.onSample = func() {
		once.Do(func() {
			if err := h.store.Apply(context.Background(), &deploy.Request{ID: h.onlyRunning(t), Abort: true, At: time.Now()}); err != nil {
				t.Error(err)
			}
		})
	}
	p := gated(h, canaryPlan(h, "v2", time.Hour), j) // only the abort ends it
	id, st, err := h.deploy(p, nil)
	if err != nil || st != deploy.StateAborted {
		t.Fatalf("state %s, err %v", st, err)
	}
	w.allAt1(t, id)
	if r := h.running(); r["web1"] != "v2" || r["web2"] != "v1" {
		t.Errorf("running %v: want the canary left on v2, the rest untouched", r)
	}
}

// A run stopped during the canary (a leader that died) leaves the weights
// recorded; the next run puts them back, watches the canary again and goes
// on; an operator's abort of a deployment no engine runs restores them too.
func TestCanaryInterruptedThenResumedOrAborted(t *testing.T) {
	for _, end := range []string{"resume", "abort unattended"} {
		t.Run(end, func(t *testing.T) {
			f := newFleet(hostsNamed(4)...)
			h := newHarness(t, f)
			w := newWeighted(h)
			h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			j := &judge{verdict: failsOn("never"), onSample: cancel}
			p := gated(h, canaryPlan(h, "v2", 30*time.Millisecond), j)
			id := submitThenInterrupt(t, h, ctx, p)
			d, _ := h.store.Deployment(id)
			if d.Weights == nil || w.weights()["web/web2"] != 3 {
				t.Fatalf("after the interrupted run: recorded %+v, weights %v; want the canary's", d.Weights, w.weights())
			}
			j.mu.Lock()
			j.onSample = nil
			j.mu.Unlock()
			h.engine = New(h.engine.d) // a new leader, or a new CLI
			switch end {
			case "resume":
				st, err := h.engine.Run(context.Background(), nil, id)
				if err != nil || st != deploy.StateSucceeded {
					t.Fatalf("resumed: state %s, err %v", st, err)
				}
				allOn(t, h.running(), "v2")
			case "abort unattended":
				if err := h.engine.RestoreWeights(context.Background(), id); err != nil {
					t.Fatal(err)
				}
				cmd, err := deploy.Decide(&d, deploy.ActionAbort, deploy.Unattended, time.Now())
				if err == nil {
					err = h.store.Apply(context.Background(), cmd)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			w.allAt1(t, id)
		})
	}
}

// onlyRunning is the ID of the one unfinished deployment.
func (h *harness) onlyRunning(t *testing.T) string {
	for _, d := range h.store.Deployments() {
		if !d.State.Terminal() {
			return d.ID
		}
	}
	t.Fatal("no running deployment")
	return ""
}

// A pause asked during the canary stops its watch too: the weights go back,
// the deployment is paused with every host in rotation, and a resume
// watches the canary again from the start before the batches.
func TestPauseDuringTheCanary(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	w := newWeighted(h)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	stop := make(chan struct{})
	var once sync.Once
	j := &judge{verdict: failsOn("never")}
	j.onSample = func() { once.Do(func() { close(stop) }) }
	p := gated(h, canaryPlan(h, "v2", time.Hour), j) // only the pause ends the first watch
	id, st, err := h.deploy(p, stop)
	if err != nil || st != deploy.StatePaused {
		t.Fatalf("state %s, err %v", st, err)
	}
	w.allAt1(t, id)
	d, _ := h.store.Deployment(id)
	if d.OpenBatch() != 0 || d.Hosts["web2"].Stage != deploy.StagePending {
		t.Fatalf("paused at batch %d, web2 %s: want the canary still open, batch 2 not begun", d.OpenBatch(), d.Hosts["web2"].Stage)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The resumed canary is watched an hour too: an abort after its first
	// sample ends it (what it must show is that it was watched again).
	j.mu.Lock()
	j.seen = nil
	j.onSample = func() {
		if err := h.store.Apply(context.Background(), &deploy.Request{ID: id, Abort: true, At: time.Now()}); err != nil {
			t.Error(err)
		}
	}
	j.mu.Unlock()
	if err := h.store.Apply(ctx, &deploy.Request{ID: id, Resume: true, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st, err = h.engine.Run(ctx, nil, id)
	if err != nil || st != deploy.StateAborted {
		t.Fatalf("resumed: state %s, err %v", st, err)
	}
	if first := j.targets()[0]; !slices.Equal(first.Hosts, []string{"web1"}) {
		t.Errorf("the resumed run first judged %+v, want the canary (web1)", first)
	}
	w.allAt1(t, id)
}
