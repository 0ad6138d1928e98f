package coordinator

import (
	"maps"
	"strings"
	"testing"

	"github.com/drover-dev/drover/analysis"
	"github.com/drover-dev/drover/orchestrator"
)

// /metrics exports the analysis gates: samples by verdict, and the last
// conclusive value of each gate.
func TestMetricsGates(t *testing.T) {
	m := newMetrics()
	for _, s := range []analysis.Sample{
		{Gate: "errors", Verdict: analysis.Pass, Value: 0.002},
		{Gate: "errors", Verdict: analysis.Fail, Value: 0.05},
		{Gate: "errors", Verdict: analysis.Inconclusive},
		{Gate: "latency", Verdict: analysis.Pass, Value: 0.012},
	} {
		m.observe(orchestrator.Event{Kind: orchestrator.EventGate, Sample: &s})
	}
	got := map[string]float64{}
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "drover_gate_") {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, lp := range mt.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			got[key] = mt.GetCounter().GetValue() + mt.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"drover_gate_samples_total{gate=errors,verdict=fail}":         1,
		"drover_gate_samples_total{gate=errors,verdict=inconclusive}": 1,
		"drover_gate_samples_total{gate=errors,verdict=pass}":         1,
		"drover_gate_samples_total{gate=latency,verdict=pass}":        1,
		"drover_gate_value{gate=errors}":                              0.05,
		"drover_gate_value{gate=latency}":                             0.012,
	}
	if !maps.Equal(got, want) {
		t.Errorf("gate series:\n got %v\nwant %v", got, want)
	}
}

// /metrics shows a canary's share while its weights are set, 0 once back.
func TestMetricsCanary(t *testing.T) {
	m := newMetrics()
	m.observe(orchestrator.Event{Kind: orchestrator.EventCanary, Share: 5, Weights: map[string]int{"web/web1": 1, "web/web2": 19}})
	if got := gauge(t, m); got != 5 {
		t.Errorf("share during the canary = %g, want 5", got)
	}
	m.observe(orchestrator.Event{Kind: orchestrator.EventCanary, Weights: map[string]int{"web/web1": 1, "web/web2": 1}})
	if got := gauge(t, m); got != 0 {
		t.Errorf("share after the canary = %g, want 0", got)
	}
}

// gauge is the canary share's value, read as /metrics would.
func gauge(t *testing.T, m *metrics) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "drover_canary_share_percent" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no drover_canary_share_percent series")
	return 0
}
