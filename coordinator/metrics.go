package coordinator

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/drover-dev/drover/analysis"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/orchestrator"
	"github.com/drover-dev/drover/raftstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are this node's Prometheus series, served on /metrics.
type metrics struct {
	reg           *prometheus.Registry
	deployments   *prometheus.CounterVec
	stageSeconds  *prometheus.HistogramVec
	applySeconds  prometheus.Histogram
	leaderChanges prometheus.Counter
	isLeader      prometheus.Gauge
	connsRefused  prometheus.Counter
	gateSamples   *prometheus.CounterVec
	gateValue     *prometheus.GaugeVec
	canaryShare   prometheus.Gauge

	mu   sync.Mutex
	last map[string]deploy.Stage // deployment/host -> the stage it is in
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		deployments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_deployments_total",
			Help: "Deployments this node ran to an end, by outcome (succeeded, failed, rolled_back, aborted).",
		}, []string{"outcome"}),
		stageSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drover_host_stage_duration_seconds",
			Help:    "Time a host spent in each pipeline stage.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"stage", "phase"}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "drover_raft_apply_duration_seconds",
			Help:    "Time to commit and apply one command through Raft (leader only).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drover_leader_changes_total",
			Help: "Times this node gained or lost leadership.",
		}),
		isLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drover_is_leader",
			Help: "1 while this node leads the cluster.",
		}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drover_api_connections_refused_total",
			Help: "API connections closed because their source address already held the maximum (--max-conns-per-source).",
		}),
		gateSamples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_gate_samples_total",
			Help: "Samples of the analysis gates this node took, by gate (the plan's name) and verdict (pass, fail, inconclusive).",
		}, []string{"gate", "verdict"}),
		gateValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drover_gate_value",
			Help: "The last conclusive value of each analysis gate (a share for error_rate, seconds for response_time, the query's result).",
		}, []string{"gate"}),
		canaryShare: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drover_canary_share_percent",
			Help: "The share of the traffic (percent) a canary this node runs has now through HAProxy weights; 0 when its weights are back.",
		}),
		last: map[string]deploy.Stage{},
	}
	// Series exist from the start, at zero, so that dashboards and alerts
	// see them before the first deployment.
	for _, st := range []deploy.DeploymentState{deploy.StateSucceeded, deploy.StateFailed, deploy.StateRolledBack, deploy.StateAborted} {
		m.deployments.WithLabelValues(string(st))
	}
	for _, st := range []deploy.Stage{deploy.StageDrain, deploy.StageInstall, deploy.StageActivate, deploy.StageVerify, deploy.StageEnable} {
		for _, ph := range []deploy.Phase{deploy.PhaseRollout, deploy.PhaseRollback} {
			m.stageSeconds.WithLabelValues(string(st), string(ph))
		}
	}
	m.reg.MustRegister(m.deployments, m.stageSeconds, m.applySeconds, m.leaderChanges, m.isLeader, m.connsRefused,
		m.gateSamples, m.gateValue, m.canaryShare,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observe turns engine events into series. A stage or done event carries
// the time since the host's previous event: the length of the stage it
// leaves.
func (m *metrics) observe(ev orchestrator.Event) {
	switch ev.Kind {
	case orchestrator.EventFinished:
		m.deployments.WithLabelValues(string(ev.State)).Inc()
	case orchestrator.EventGate:
		if s := ev.Sample; s != nil {
			m.gateSamples.WithLabelValues(s.Gate, string(s.Verdict)).Inc()
			if s.Verdict != analysis.Inconclusive {
				m.gateValue.WithLabelValues(s.Gate).Set(s.Value)
			}
		}
	case orchestrator.EventCanary:
		m.canaryShare.Set(ev.Share) // no share: the weights are back
	case orchestrator.EventStage, orchestrator.EventHostDone, orchestrator.EventHostFailed:
		key := ev.Deployment + "/" + ev.Host
		m.mu.Lock()
		prev, ok := m.last[key]
		if ev.Kind == orchestrator.EventStage {
			m.last[key] = ev.Stage
		} else {
			delete(m.last, key)
		}
		m.mu.Unlock()
		if ok && ev.Elapsed > 0 {
			m.stageSeconds.WithLabelValues(string(prev), string(ev.Phase)).Observe(ev.Elapsed.Seconds())
		}
	}
}

// timedStore measures Apply for the engine.
type timedStore struct {
	*raftstore.Store
	m *metrics
}

func (t timedStore) Apply(ctx context.Context, c deploy.Command) error {
	start := time.Now()
	err := t.Store.Apply(ctx, c)
	t.m.applySeconds.Observe(time.Since(start).Seconds())
	return err
}
