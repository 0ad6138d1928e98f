package deploy

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/drover-dev/drover/analysis"
	"github.com/drover-dev/drover/plans"
)

// gatedLedger holds one running deployment of hosts a (batch 1) and b
// (batch 2) whose plan has gates when gated.
func gatedLedger(t *testing.T, kind Kind, gated bool) *Ledger {
	t.Helper()
	p := plans.Plan{Rollback: plans.Rollback{Automatic: true}}
	if gated {
		p.Analysis = &plans.Analysis{Gates: []plans.Gate{{Name: "errors", HAProxy: "error_rate < 1%"}}}
	}
	pj, err := json.Marshal(&p)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLedger()
	if err := l.Apply(&CreateDeployment{Deployment: Deployment{ID: "d1", Name: "web", Version: "v2", Kind: kind, Plan: pj,
		Batches: [][]string{{"a"}, {"b"}}}, At: time.Unix(100, 0)}); err != nil {
		t.Fatal(err)
	}
	return &l
}

func stage(t *testing.T, l *Ledger, host string, st Stage, ph Phase) {
	t.Helper()
	if err := l.Apply(&SetHostStage{ID: "d1", Host: host, Stage: st, Phase: ph, At: time.Unix(101, 0)}); err != nil {
		t.Fatal(err)
	}
}

// A batch with gates stays open once its hosts are done, until its
// analysis passed: a new leader judges it instead of going on.
func TestOpenBatchWaitsForAnalysis(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kind  Kind
		gated bool
		steps func(t *testing.T, l *Ledger)
		want  int
	}{
		{"done, no gates", KindDeploy, false, func(t *testing.T, l *Ledger) { stage(t, l, "a", StageDone, PhaseRollout) }, 1},
		{"done, not judged", KindDeploy, true, func(t *testing.T, l *Ledger) { stage(t, l, "a", StageDone, PhaseRollout) }, 0},
		{"done, passed", KindDeploy, true, func(t *testing.T, l *Ledger) {
			stage(t, l, "a", StageDone, PhaseRollout)
			if err := l.Apply(&AnalysisPassed{ID: "d1", Batch: 0, At: time.Unix(102, 0)}); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"failed by the gate, then rolled back", KindDeploy, true, func(t *testing.T, l *Ledger) {
			stage(t, l, "a", StageDone, PhaseRollout)
			stage(t, l, "a", StageFailed, PhaseRollout)
			stage(t, l, "a", StageDone, PhaseRollback)
		}, 1},
		{"failed by the gate, rollback due", KindDeploy, true, func(t *testing.T, l *Ledger) {
			stage(t, l, "a", StageDone, PhaseRollout)
			stage(t, l, "a", StageFailed, PhaseRollout)
		}, 0},
		{"skipped only: nothing to judge", KindDeploy, true, func(t *testing.T, l *Ledger) { stage(t, l, "a", StageSkipped, PhaseRollout) }, 1},
		{"a rollback is not judged", KindRollback, true, func(t *testing.T, l *Ledger) { stage(t, l, "a", StageDone, PhaseRollout) }, 1},
		{"a repair is not judged", KindRepair, true, func(t *testing.T, l *Ledger) { stage(t, l, "a", StageDone, PhaseRollout) }, 1},
		{"second batch judged, first passed", KindDeploy, true, func(t *testing.T, l *Ledger) {
			stage(t, l, "a", StageDone, PhaseRollout)
			if err := l.Apply(&AnalysisPassed{ID: "d1", Batch: 0, At: time.Unix(102, 0)}); err != nil {
				t.Fatal(err)
			}
			stage(t, l, "b", StageDone, PhaseRollout)
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := gatedLedger(t, tc.kind, tc.gated)
			tc.steps(t, l)
			d := l.Deployments["d1"]
			pol, err := d.Policy()
			if err != nil {
				t.Fatal(err)
			}
			if got, display := OpenBatch(d, pol), d.OpenBatch(); got != tc.want || display != tc.want {
				t.Errorf("open batch: engine %d, display %d, want %d", got, display, tc.want)
			}
		})
	}
}

func TestAnalysisCommands(t *testing.T) {
	l := gatedLedger(t, KindDeploy, true)
	stage(t, l, "a", StageDone, PhaseRollout)
	s := analysis.Sample{Gate: "errors", Verdict: analysis.Fail, Condition: "error_rate < 1%", Value: 0.05, Threshold: 0.01, Requests: 200,
		Metric: "error_rate", At: time.Unix(103, 0).UTC()}
	for _, tc := range []struct {
		c    Command
		want error
	}{
		{&GateSamples{ID: "d1", Batch: 0, Samples: []analysis.Sample{s}, At: time.Unix(103, 0)}, nil},
		{&GateSamples{ID: "d1", Batch: 2, Samples: []analysis.Sample{s}, At: time.Unix(103, 0)}, ErrBadCommand},
		{&GateSamples{ID: "d1", Batch: 0, At: time.Unix(103, 0)}, ErrBadCommand},
		{&GateSamples{ID: "nope", Batch: 0, Samples: []analysis.Sample{s}}, ErrUnknownDeployment},
		{&AnalysisPassed{ID: "d1", Batch: -1}, ErrBadCommand},
		{&AnalysisPassed{ID: "d1", Batch: 0, Baselines: map[string]float64{"latency": 0.002}, At: time.Unix(104, 0)}, nil},
		{&AnalysisPassed{ID: "d1", Batch: 0, At: time.Unix(105, 0)}, nil}, // again: no change
	} {
		if err := l.Apply(tc.c); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("%T %+v: err = %v, want %v", tc.c, tc.c, err, tc.want)
		}
	}
	d := l.Deployments["d1"]
	if len(d.AnalysisPassed) != 1 || d.AnalysisPassed[0] != 0 || !d.Updated.Equal(time.Unix(104, 0)) || d.Baselines["latency"] != 0.002 {
		t.Errorf("analysis passed %v, updated %v, baselines %v", d.AnalysisPassed, d.Updated, d.Baselines)
	}
	if c := d.Clone(); c.Baselines["latency"] != 0.002 {
		t.Errorf("clone lost the baselines: %v", c.Baselines)
	} else if c.Baselines["latency"] = 1; d.Baselines["latency"] != 0.002 {
		t.Errorf("clone shares the baselines")
	}
	var gate, passed []Event
	for _, ev := range l.EventsAfter("d1", 0) {
		switch ev.Kind {
		case EvGate:
			gate = append(gate, ev)
		case EvAnalysis:
			passed = append(passed, ev)
		}
	}
	if len(gate) != 1 || gate[0].Batch != 1 || len(gate[0].Samples) != 1 || gate[0].Samples[0].String() != s.String() {
		t.Errorf("gate events: %+v", gate)
	}
	if len(passed) != 1 || passed[0].Batch != 1 {
		t.Errorf("analysis events: %+v", passed)
	}
	// Commands round-trip through their JSON (the log), and apply the same.
	for _, c := range []Command{&GateSamples{ID: "d1", Samples: []analysis.Sample{s}}, &AnalysisPassed{ID: "d1", Batch: 1}} {
		b, _ := json.Marshal(c)
		back := NewCommand(c.CommandType())
		if err := json.Unmarshal(b, back); err != nil {
			t.Fatal(err)
		}
		if b2, _ := json.Marshal(back); string(b2) != string(b) {
			t.Errorf("%T: %s after a round trip, want %s", c, b2, b)
		}
	}
}
