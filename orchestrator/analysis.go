package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drover-dev/drover/analysis"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/ctxtime"
	"github.com/drover-dev/drover/plans"
)

// counterReader is a balancer that can read its servers' traffic counters
// (HAProxy's show stat), one source per instance, for HAProxy gates.
type counterReader interface {
	CounterSources() []analysis.CounterSource
}

// PlanGates builds the plan's analysis gates over lb (the balancer the run
// drains and enables with; HAProxy gates read its counters). A gate
// keeps what it saw (a relative gate, the old release's last value): one
// set serves a whole run.
func PlanGates(p *plans.Plan, lb Balancer) ([]analysis.Gate, error) {
	if !p.HasGates() {
		return nil, nil
	}
	a := p.Analysis
	var sources []analysis.CounterSource
	if cr, ok := lb.(counterReader); ok {
		sources = cr.CounterSources()
	}
	var prom *analysis.Prometheus
	if a.Prometheus != nil {
		prom = &analysis.Prometheus{URL: a.Prometheus.URL}
	}
	gates := make([]analysis.Gate, 0, len(a.Gates))
	for _, g := range a.Gates {
		var gate analysis.Gate
		var err error
		switch {
		case g.Prometheus != nil:
			if prom == nil {
				return nil, fmt.Errorf("gate %s: no analysis.prometheus.url", g.Name)
			}
			var cond analysis.Condition
			if cond, err = analysis.ParseCondition(g.Prometheus.Condition, analysis.Result); err == nil {
				gate, err = analysis.NewPrometheusGate(g.Name, g.Prometheus.Query, cond, prom)
			}
		default:
			var cond analysis.Condition
			if cond, err = analysis.ParseCondition(g.HAProxy, analysis.ErrorRate, analysis.ResponseTime); err == nil {
				gate, err = analysis.NewHAProxyGate(g.Name, cond, int64(a.MinRequests), sources...)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("gate %s: %w", g.Name, err)
		}
		gates = append(gates, gate)
	}
	return gates, nil
}

// baselineSeeder is a relative gate that can start from an old release's
// value recorded by an earlier leader (analysis.HAProxyGate).
type baselineSeeder interface {
	SeedBaseline(v float64)
}

// CounterSources are the HAProxy instances' counters.
func (b haproxyBalancer) CounterSources() []analysis.CounterSource {
	drivers := b.Drivers()
	out := make([]analysis.CounterSource, len(drivers))
	for i, d := range drivers {
		out[i] = d
	}
	return out
}

// analyse judges batch b, whose hosts are done and back in rotation, by the
// plan's gates. It returns only errors that stop the engine: a failed gate
// is recorded as a failure of every host of the batch that finished its
// rollout, each then rolled back like a host that failed its health check
// (when the plan rolls back); a passed analysis is recorded
// (deploy.AnalysisPassed) before the next batch may open.
func (r *run) analyse(ctx context.Context, d deploy.Deployment, b int) error {
	var judged []string
	for _, name := range d.Batches[b] {
		if hp := d.Hosts[name]; hp.Stage == deploy.StageDone && hp.Phase == deploy.PhaseRollout {
			judged = append(judged, name)
		}
	}
	// One set of gates for the whole run: a relative gate keeps the old
	// release's last value for the batches after the last old server went.
	if r.gates == nil && r.gatesErr == nil {
		r.gates, r.gatesErr = r.e.d.Gates(r.plan, r.rawLB)
		// A leader that resumes a deployment starts from what the
		// previous one recorded the old release to be.
		for _, g := range r.gates {
			if v, ok := d.Baselines[g.Name()]; ok {
				if s, ok := g.(baselineSeeder); ok {
					s.SeedBaseline(v)
				}
			}
		}
	}
	gates, err := r.gates, r.gatesErr
	baselines := map[string]float64{} // the last one each relative gate saw
	// watch runs the gates for duration (a canary without gates waits).
	watch := func(ctx context.Context, duration time.Duration) error {
		a := r.plan.Analysis
		if !r.plan.HasGates() {
			return ctxtime.Sleep(ctx, duration) // a canary without gates: its time at the share
		}
		names := make([]string, len(a.Gates))
		for i, g := range a.Gates {
			names[i] = g.Name
		}
		r.report(ctx, Event{Kind: EventAnalysis, Batch: b + 1, Batches: len(d.Batches), Hosts: judged,
			Message: fmt.Sprintf("watching gates %s for %s, every %s", strings.Join(names, ", "), duration, a.Interval)})
		return analysis.Run(ctx, gates, analysis.Policy{Interval: a.Interval, Duration: duration, FailureLimit: a.FailureLimit},
			r.analysisTarget, func(round []analysis.Sample) error {
				for _, s := range round {
					if s.Baseline != nil {
						baselines[s.Gate] = *s.Baseline
					}
				}
				return r.recordSamples(ctx, b, round)
			})
	}
	what := fmt.Sprintf("batch %d", b+1)
	canary := deploy.IsCanary(b, deploy.PolicyOf(r.kind, r.plan))
	if canary {
		what = "the canary (batch 1)"
	}
	if err == nil {
		if canary {
			err = r.canary(ctx, d, judged, watch)
		} else {
			err = watch(ctx, r.plan.Analysis.Duration)
		}
	}
	if errors.Is(err, errCanaryStopped) {
		return nil // weights back, not passed: the run pauses or ends at its safe point
	}
	switch {
	case err == nil:
		passed := &deploy.AnalysisPassed{ID: r.id, Batch: b, At: r.e.d.Now().UTC()}
		if len(baselines) > 0 {
			passed.Baselines = baselines
		}
		if err := r.e.d.Store.Apply(ctx, passed); err != nil {
			return &fatalError{fmt.Errorf("record the analysis of batch %d: %w", b+1, err)}
		}
		r.emit(Event{Kind: EventAnalysis, Batch: b + 1, Batches: len(d.Batches), Hosts: judged,
			Message: what + " passed every gate"})
		return nil
	case isFatal(ctx, err):
		return fatalOnly(ctx, err)
	}
	// The gates said no, or could not be set up: the batch's hosts fail.
	failure := fmt.Errorf("analysis of %s: %w", what, err)
	for _, name := range judged {
		if err := r.fail(ctx, name, deploy.PhaseRollout, d.Hosts[name].Target, failure); err != nil {
			return err
		}
	}
	if !r.rollsBack() {
		return nil
	}
	if d, err = r.deployment(); err != nil {
		return err
	}
	// The batch's slot: these hosts were out of rotation together a moment ago.
	return errors.Join(each(judged, func(name string) error {
		defer r.release(r.hosts[name])
		if err := r.rollbackHost(ctx, d.Hosts[name]); err != nil {
			return err
		}
		r.finishedWith(ctx, name)
		return nil
	})...)
}

// analysisTarget is what the gates judge now: the servers on the new
// release (hosts whose rollout is done, or that already ran it), and those
// on the old one (not yet started, or rolled back), from the store.
func (r *run) analysisTarget() analysis.Target {
	t := analysis.Target{Version: r.plan.Version, Deployment: r.id}
	d, err := r.deployment()
	if err != nil {
		return t
	}
	t.Version = d.Version
	for _, name := range d.HostNames() {
		hp, server := d.Hosts[name], r.hosts[name].LBServer
		switch {
		case hp.Phase == deploy.PhaseRollout && (hp.Stage == deploy.StageDone || hp.Stage == deploy.StageSkipped):
			t.Hosts = append(t.Hosts, name)
			if server != "" {
				t.New = append(t.New, server)
			}
		case server == "":
		case hp.Phase == deploy.PhaseRollout && hp.Stage == deploy.StagePending,
			hp.Phase == deploy.PhaseRollback && hp.Stage == deploy.StageDone:
			t.Old = append(t.Old, server)
		}
	}
	return t
}

// recordSamples records a round of samples through the store (so that a
// cluster's watchers see them) and shows each one.
func (r *run) recordSamples(ctx context.Context, b int, round []analysis.Sample) error {
	if err := r.e.d.Store.Apply(ctx, &deploy.GateSamples{ID: r.id, Batch: b, Samples: round, At: r.e.d.Now().UTC()}); err != nil {
		return &fatalError{fmt.Errorf("record the samples of batch %d: %w", b+1, err)}
	}
	for _, s := range round {
		r.emit(Event{Kind: EventGate, Batch: b + 1, Sample: &s, Message: s.String()})
	}
	return nil
}
