package analysis

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// scripted is a gate whose samples follow a script of verdicts (the last
// one repeats).
type scripted struct {
	name     string
	verdicts []Verdict
	n        int
	started  int
}

func (g *scripted) Name() string                  { return g.name }
func (g *scripted) Start(context.Context, Target) { g.started++ }
func (g *scripted) Sample(context.Context, Target) Sample {
	v := g.verdicts[min(g.n, len(g.verdicts)-1)]
	g.n++
	if v == Inconclusive {
		return inconclusive(g.name, Condition{}, "not enough traffic")
	}
	return Sample{Gate: g.name, Verdict: v, Metric: ErrorRate.Name}
}

func TestRun(t *testing.T) {
	const interval, window = time.Second, 10*time.Second + 500*time.Millisecond
	for _, tc := range []struct {
		name    string
		script  []Verdict
		limit   int
		samples int           // taken before Run returned
		after   time.Duration // when Run returned
		inARow  int           // of the failure; 0: passed
		expired bool
	}{
		{name: "passes", script: []Verdict{Pass}, samples: 10, after: window},
		{name: "fails at once", script: []Verdict{Pass, Fail}, samples: 2, after: 2 * time.Second, inARow: 1},
		{name: "failure limit in a row", script: []Verdict{Fail, Pass, Fail, Fail, Fail}, limit: 3, samples: 5, after: 5 * time.Second, inARow: 3},
		{name: "a flap under the limit passes", script: []Verdict{Pass, Fail, Pass}, limit: 2, samples: 10, after: window},
		{name: "inconclusive does not reset the count", script: []Verdict{Fail, Inconclusive, Fail}, limit: 2, samples: 3, after: 3 * time.Second, inARow: 2},
		{name: "never conclusive fails at the end", script: []Verdict{Inconclusive}, samples: 10, after: window, expired: true},
		{name: "one pass among inconclusive is enough", script: []Verdict{Inconclusive, Pass, Inconclusive}, samples: 10, after: window},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := &scripted{name: "g", verdicts: tc.script}
				other := &scripted{name: "other", verdicts: []Verdict{Pass}}
				var reported int
				start := time.Now()
				err := Run(t.Context(), []Gate{other, g}, Policy{Interval: interval, Duration: window, FailureLimit: tc.limit},
					func() Target { return Target{} }, func(round []Sample) error {
						if len(round) != 2 || round[0].Gate != "other" {
							t.Errorf("round %+v, want one sample per gate in order", round)
						}
						for _, s := range round {
							if s.Gate == "g" {
								reported++
							}
						}
						return nil
					})
				if got := time.Since(start); got != tc.after {
					t.Errorf("returned after %s, want %s", got, tc.after)
				}
				if g.n != tc.samples || reported != tc.samples || g.started != 1 {
					t.Errorf("%d samples, %d reported, %d starts; want %d, %d, 1", g.n, reported, g.started, tc.samples, tc.samples)
				}
				var ge *GateError
				switch {
				case tc.inARow == 0 && !tc.expired:
					if err != nil {
						t.Fatal(err)
					}
				case !errors.As(err, &ge) || !errors.Is(err, ErrGateFailed) || ge.Sample.Gate != "g" || ge.InARow != tc.inARow || ge.Expired != tc.expired:
					t.Fatalf("err = %v (%+v), want gate g failed %d in a row, expired %v", err, ge, tc.inARow, tc.expired)
				}
			})
		})
	}
}

func TestRunStopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
		defer cancel()
		err := Run(ctx, []Gate{&scripted{name: "g", verdicts: []Verdict{Pass}}}, Policy{Interval: time.Second, Duration: time.Minute},
			func() Target { return Target{} }, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestRunStopsWhenReportFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("store refused")
		err := Run(t.Context(), []Gate{&scripted{name: "g", verdicts: []Verdict{Fail}}}, Policy{Interval: time.Second, Duration: time.Minute},
			func() Target { return Target{} }, func([]Sample) error { return boom })
		if !errors.Is(err, boom) || errors.Is(err, ErrGateFailed) {
			t.Fatalf("err = %v, want the report's error", err)
		}
	})
}

func TestRunRefusesAnEmptyPolicy(t *testing.T) {
	err := Run(context.Background(), []Gate{&scripted{name: "g", verdicts: []Verdict{Pass}}}, Policy{}, func() Target { return Target{} }, nil)
	if err == nil {
		t.Fatal("a zero interval was accepted")
	}
	if err := Run(context.Background(), nil, Policy{}, nil, nil); err != nil {
		t.Fatalf("no gates: %v", err)
	}
}
