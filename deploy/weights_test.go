package deploy

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/drover-dev/drover/plans"
)

// canaryLedger holds one running deployment of hosts a (the canary) and b,
// without gates.
func canaryLedger(t *testing.T, kind Kind) *Ledger {
	t.Helper()
	p := plans.Plan{Rollback: plans.Rollback{Automatic: true},
		Strategy: plans.Strategy{Canary: &plans.Canary{Hosts: plans.Size{N: 1}, Weight: 10, Duration: time.Minute}}}
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

// The canary batch stays open once its hosts are done, gates or not, until
// its watch passed; only a rollout of a new release has a canary.
func TestOpenBatchWaitsForCanary(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kind   Kind
		passed bool
		want   int
	}{
		{"done, not watched", KindDeploy, false, 0},
		{"done, passed", KindDeploy, true, 1},
		{"a rollback has no canary", KindRollback, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := canaryLedger(t, tc.kind)
			stage(t, l, "a", StageDone, PhaseRollout)
			if tc.passed {
				if err := l.Apply(&AnalysisPassed{ID: "d1", Batch: 0, At: time.Unix(102, 0)}); err != nil {
					t.Fatal(err)
				}
			}
			if got := l.Deployments["d1"].OpenBatch(); got != tc.want {
				t.Errorf("OpenBatch = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSetWeights(t *testing.T) {
	l := canaryLedger(t, KindDeploy)
	restore, set := map[string]int{"web/a": 1, "web/b": 1}, map[string]int{"web/a": 1, "web/b": 9}
	if err := l.Apply(&SetWeights{ID: "d1", Restore: restore, Set: set, Share: 10, At: time.Unix(101, 0)}); err != nil {
		t.Fatal(err)
	}
	d := l.Deployments["d1"]
	want := &Weights{Restore: restore, Set: set, Share: 10}
	if !reflect.DeepEqual(d.Weights, want) {
		t.Fatalf("Weights = %+v, want %+v", d.Weights, want)
	}
	if c := d.Clone(); c.Weights == d.Weights || !reflect.DeepEqual(c.Weights, d.Weights) {
		t.Errorf("Clone shares or loses the weights: %+v", c.Weights)
	}
	ev := l.Events[len(l.Events)-1]
	if ev.Kind != EvWeights || ev.Share != 10 || !reflect.DeepEqual(ev.Weights, set) {
		t.Errorf("event = %+v", ev)
	}
	// A weight without one to restore is refused, changing nothing.
	err := l.Apply(&SetWeights{ID: "d1", Restore: map[string]int{"web/a": 1}, Set: map[string]int{"web/c": 3}, At: time.Unix(102, 0)})
	if !errors.Is(err, ErrBadCommand) || !reflect.DeepEqual(d.Weights, want) {
		t.Errorf("err = %v, weights %+v", err, d.Weights)
	}
	// Restored: cleared, once (a resumed leader restores again, silently).
	for range 2 {
		n := len(l.Events)
		if err := l.Apply(&SetWeights{ID: "d1", At: time.Unix(103, 0)}); err != nil {
			t.Fatal(err)
		}
		if d.Weights != nil {
			t.Errorf("weights not cleared: %+v", d.Weights)
		}
		if n > 1 && len(l.Events) > n+1 {
			t.Errorf("%d events for one restore", len(l.Events)-n)
		}
	}
}
