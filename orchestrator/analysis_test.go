package orchestrator

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/analysis"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/plans"
)

// judge is a gate whose verdict is a function of what it is asked to judge.
type judge struct {
	mu      sync.Mutex
	verdict func(t analysis.Target) analysis.Verdict
	seen    []analysis.Target // one per sample
	// onSample, when set, runs before each sample (to stop the engine there).
	onSample func()
	seeded   []float64 // SeedBaseline's values
}

// SeedBaseline records what a resumed run gave the gate.
func (j *judge) SeedBaseline(v float64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seeded = append(j.seeded, v)
}

func (j *judge) Name() string                           { return "errors" }
func (j *judge) Start(context.Context, analysis.Target) {}
func (j *judge) Sample(_ context.Context, t analysis.Target) analysis.Sample {
	j.mu.Lock()
	j.seen = append(j.seen, t)
	on := j.onSample
	j.mu.Unlock()
	if on != nil {
		on()
	}
	v := j.verdict(t)
	base := float64(len(t.Old)) / 1000 // the old release's value: something to record
	s := analysis.Sample{Gate: "errors", Verdict: v, Condition: "error_rate < 1%", Metric: "error_rate", Value: 0, Threshold: 0.01, Requests: 100, Baseline: &base}
	if v == analysis.Fail {
		s.Value = 0.05
	}
	return s
}

func (j *judge) targets() []analysis.Target {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.seen)
}

// gated gives h's engine the judge as its only gate and p an analysis
// section with short windows.
func gated(h *harness, p *plans.Plan, j *judge) *plans.Plan {
	h.engine.d.Gates = func(gp *plans.Plan, _ Balancer) ([]analysis.Gate, error) {
		if !gp.HasGates() {
			return nil, nil
		}
		return []analysis.Gate{j}, nil
	}
	p.Analysis = &plans.Analysis{Interval: 2 * time.Millisecond, Duration: 50 * time.Millisecond, FailureLimit: 2, MinRequests: 1,
		Gates: []plans.Gate{{Name: "errors", HAProxy: "error_rate < 1%"}}}
	return p
}

// failingEarly gives p a window no loaded machine gets to the end of
// before two samples: only failure_limit can end it.
func failingEarly(p *plans.Plan) *plans.Plan {
	p.Analysis.Duration = time.Minute
	return p
}

func failsOn(version string) func(analysis.Target) analysis.Verdict {
	return func(t analysis.Target) analysis.Verdict {
		if t.Version == version {
			return analysis.Fail
		}
		return analysis.Pass
	}
}

func TestGatesJudgeEachBatch(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	j := &judge{verdict: failsOn("never")}
	id, st, err := h.deploy(gated(h, h.plan("v2", plans.Size{N: 2}, 0), j), nil)
	if err != nil || st != deploy.StateSucceeded {
		t.Fatalf("state %s, err %v", st, err)
	}
	d, _ := h.store.Deployment(id)
	if !slices.Equal(d.AnalysisPassed, []int{0, 1}) {
		t.Errorf("analysis passed for batches %v, want [0 1]", d.AnalysisPassed)
	}
	// The first batch is judged against the hosts still on v1, the second
	// with every host on v2.
	ts := j.targets()
	first, last := ts[0], ts[len(ts)-1]
	if !slices.Equal(first.New, []string{"web/web1", "web/web2"}) || !slices.Equal(first.Old, []string{"web/web3", "web/web4"}) ||
		!slices.Equal(first.Hosts, []string{"web1", "web2"}) || first.Version != "v2" || first.Deployment != id {
		t.Errorf("first batch's target = %+v", first)
	}
	if !slices.Equal(last.New, []string{"web/web1", "web/web2", "web/web3", "web/web4"}) || len(last.Old) != 0 {
		t.Errorf("last batch's target = %+v", last)
	}
	// Samples are shown, and recorded for a cluster's watchers.
	var gates, passed int
	h.mu.Lock()
	for _, ev := range h.events {
		switch {
		case ev.Kind == EventGate && ev.Sample != nil && ev.Sample.Gate == "errors":
			gates++
		case ev.Kind == EventAnalysis && strings.Contains(ev.Message, "passed every gate"):
			passed++
		}
	}
	h.mu.Unlock()
	recorded := 0
	evs, _ := h.store.Events(id, 0)
	for _, ev := range evs {
		if ev.Kind == deploy.EvGate {
			recorded += len(ev.Samples)
		}
	}
	if gates < 2 || recorded != gates || passed != 2 {
		t.Errorf("%d gate events, %d samples recorded, %d batches passed; want >= 2, the same, 2", gates, recorded, passed)
	}
	// The second batch began after the first was judged.
	if i := slices.Index(f.lbLog, "drain web/web3"); i < 0 || len(ts) == 0 {
		t.Errorf("second batch never drained: %v", f.lbLog)
	}
}

func TestFailedGateRollsBackTheBatch(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	f.lbLog = nil
	j := &judge{verdict: failsOn("v2")}
	id, st, err := h.deploy(failingEarly(gated(h, h.plan("v2", plans.Size{N: 2}, 0), j)), nil)
	if err != nil || st != deploy.StateRolledBack {
		t.Fatalf("state %s, err %v", st, err)
	}
	allOn(t, h.running(), "v1")
	d, _ := h.store.Deployment(id)
	if got := failedHosts(d); !slices.Equal(got, []string{"web1", "web2"}) {
		t.Errorf("failed hosts = %v", got)
	}
	for _, n := range []string{"web1", "web2"} {
		if e := d.Hosts[n].Error; !strings.Contains(e, "analysis of batch 1: gate errors failed 2 samples in a row: error_rate 5% (want error_rate < 1%") {
			t.Errorf("%s error = %q", n, e)
		}
	}
	for _, n := range []string{"web3", "web4"} {
		if d.Hosts[n].Touched {
			t.Errorf("%s was touched after the failed gate", n)
		}
	}
	if len(j.targets()) != 2 {
		t.Errorf("%d samples, want 2 (failure_limit 2 fails early)", len(j.targets()))
	}
	if len(d.AnalysisPassed) != 0 || len(f.out) != 0 || f.maxOut > 2 {
		t.Errorf("analysis passed %v, out %v, max out %d", d.AnalysisPassed, f.out, f.maxOut)
	}
	if !strings.Contains(d.Error, "2 host(s) failed (web1, web2), more than max_failures=0") {
		t.Errorf("deployment error = %q", d.Error)
	}
}

// Within the failure budget a failed batch is rolled back and the rollout
// goes on; the next batch is judged without it (it is back on the old
// release, counted in the baseline).
func TestFailedGateWithinBudget(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	j := &judge{verdict: func(t analysis.Target) analysis.Verdict {
		if slices.Contains(t.Hosts, "web1") {
			return analysis.Fail
		}
		return analysis.Pass
	}}
	id, st, err := h.deploy(gated(h, h.plan("v2", plans.Size{N: 2}, 2), j), nil)
	if err != nil || st != deploy.StateSucceeded {
		t.Fatalf("state %s, err %v", st, err)
	}
	d, _ := h.store.Deployment(id)
	if got := failedHosts(d); !slices.Equal(got, []string{"web1", "web2"}) {
		t.Errorf("failed hosts = %v", got)
	}
	if r := h.running(); r["web1"] != "v1" || r["web2"] != "v1" || r["web3"] != "v2" || r["web4"] != "v2" {
		t.Errorf("running %v", r)
	}
	last := j.targets()[len(j.targets())-1]
	if !slices.Equal(last.Hosts, []string{"web3", "web4"}) || !slices.Equal(last.Old, []string{"web/web1", "web/web2"}) {
		t.Errorf("second batch's target = %+v", last)
	}
}

// A leader that stops while it judges a batch leaves it open: the next one
// judges it again before going on, without driving its hosts again.
func TestResumeJudgesAnUnjudgedBatch(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j := &judge{verdict: failsOn("never"), onSample: cancel}
	p := gated(h, h.plan("v2", plans.Size{N: 2}, 0), j)
	id := submitThenInterrupt(t, h, ctx, p)
	d, _ := h.store.Deployment(id)
	if d.Hosts["web1"].Stage != deploy.StageDone || d.Hosts["web3"].Stage != deploy.StagePending || d.OpenBatch() != 0 {
		t.Fatalf("after the first run: web1 %s, web3 %s, open batch %d; want done, pending, 0",
			d.Hosts["web1"].Stage, d.Hosts["web3"].Stage, d.OpenBatch())
	}
	drains := len(f.lbLog)
	j.mu.Lock()
	j.onSample, j.seen = nil, nil
	j.mu.Unlock()
	st, err := h.engine.Run(context.Background(), nil, id)
	if err != nil || st != deploy.StateSucceeded {
		t.Fatalf("resumed: state %s, err %v", st, err)
	}
	if first := j.targets()[0]; !slices.Equal(first.Hosts, []string{"web1", "web2"}) {
		t.Errorf("the resumed run first judged %+v, want batch 1 (web1, web2)", first)
	}
	for _, e := range f.lbLog[drains:] {
		if strings.HasSuffix(e, "web1") || strings.HasSuffix(e, "web2") {
			t.Errorf("the resumed run drove batch 1 again: %v", f.lbLog[drains:])
			break
		}
	}
	if d, _ := h.store.Deployment(id); !slices.Equal(d.AnalysisPassed, []int{0, 1}) {
		t.Errorf("analysis passed %v", d.AnalysisPassed)
	}
}

// A leader that takes over in the last batch, where no host is left on the
// old release, judges it with the old release's value the first leader
// recorded when the earlier batch passed.
func TestResumeSeedsTheBaselines(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j := &judge{verdict: failsOn("never")}
	j.onSample = func() {
		if ts := j.targets(); len(ts[len(ts)-1].Hosts) == 4 { // the last batch
			cancel()
		}
	}
	p := gated(h, h.plan("v2", plans.Size{N: 2}, 0), j)
	id := submitThenInterrupt(t, h, ctx, p)
	d, _ := h.store.Deployment(id)
	if d.Baselines["errors"] != 0.002 || len(j.seeded) != 0 {
		t.Fatalf("recorded baselines %v, seeded %v; want errors=0.002 (2 old servers in batch 1), none yet", d.Baselines, j.seeded)
	}
	j.mu.Lock()
	j.onSample = nil
	j.mu.Unlock()
	// A new engine on the same store: what a new leader runs.
	h.engine = New(h.engine.d)
	if st, err := h.engine.Run(context.Background(), nil, id); err != nil || st != deploy.StateSucceeded {
		t.Fatalf("resumed: state %s, err %v", st, err)
	}
	if !slices.Equal(j.seeded, []float64{0.002}) {
		t.Errorf("seeded %v, want [0.002]", j.seeded)
	}
}

// submitThenInterrupt records a deployment of p and runs it until ctx is
// cancelled (as a leader dies), returning its ID.
func submitThenInterrupt(t *testing.T, h *harness, ctx context.Context, p *plans.Plan) string {
	t.Helper()
	id, err := h.engine.Submit(context.Background(), p, SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.engine.Run(ctx, nil, id); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v, want cancelled", err)
	}
	return id
}
