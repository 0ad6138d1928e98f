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
