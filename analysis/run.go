package analysis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Verdict is what one sample of a gate says.
type Verdict string

// The verdicts of a sample.
const (
	Pass Verdict = "pass"
	Fail Verdict = "fail"
	// Inconclusive: not enough traffic, no data, or the source could not
	// be read. It neither passes nor fails the gate, but a gate that ends
	// its window without one passing sample fails.
	Inconclusive Verdict = "inconclusive"
)

// Sample is one reading of a gate.
type Sample struct {
	Gate      string    `json:"gate"`
	Verdict   Verdict   `json:"verdict"`
	Condition string    `json:"condition"`
	Value     float64   `json:"value"`              // when conclusive
	Threshold float64   `json:"threshold"`          // what Value was compared with
	Baseline  *float64  `json:"baseline,omitempty"` // the old release's value, for a relative condition
	Requests  int64     `json:"requests,omitempty"` // HAProxy gates: the new release's requests in the reading
	Detail    string    `json:"detail,omitempty"`   // why inconclusive
	At        time.Time `json:"at"`
	// Metric names what Value measures (error_rate, response_time,
	// result): a sample read back from JSON still formats its values.
	Metric string `json:"metric"`
}

// metric is the sample's Metric, looked up by name.
func (s Sample) metric() Metric {
	for _, m := range []Metric{ErrorRate, ResponseTime, Result} {
		if m.Name == s.Metric {
			return m
		}
	}
	return Metric{Name: s.Metric, Kind: Number}
}

// String says what the sample saw, for events and errors:
// "error_rate 5.2% (want < 1%; 830 requests)".
func (s Sample) String() string {
	if s.Verdict == Inconclusive {
		return s.Detail
	}
	m := s.metric()
	want := s.Condition
	if s.Baseline != nil {
		want = fmt.Sprintf("%s = %s", s.Condition, m.Format(s.Threshold))
	}
	out := fmt.Sprintf("%s %s (want %s", m.Name, m.Format(s.Value), want)
	if s.Requests > 0 {
		out += fmt.Sprintf("; %d requests", s.Requests)
	}
	return out + ")"
}

// judged makes a conclusive sample of value against c.
func judged(gate string, c Condition, value float64, baseline *float64) Sample {
	s := Sample{Gate: gate, Condition: c.String(), Value: value, Baseline: baseline, Metric: c.Metric.Name}
	var b float64
	if baseline != nil {
		b = *baseline
	}
	s.Threshold = c.Threshold(b)
	s.Verdict = Fail
	if c.Holds(value, s.Threshold) {
		s.Verdict = Pass
	}
	return s
}

func inconclusive(gate string, c Condition, format string, a ...any) Sample {
	return Sample{Gate: gate, Condition: c.String(), Verdict: Inconclusive, Detail: fmt.Sprintf(format, a...), Metric: c.Metric.Name}
}

// Target is what the gates judge at a moment of the rollout.
type Target struct {
	// New and Old are the balancer's servers ("backend/server") on the
	// new release and on the old one (the baseline).
	New, Old []string
	// Hosts are the names of the hosts on the new release.
	Hosts      []string
	Version    string
	Deployment string
}

// Gate is one check of the release's metrics.
type Gate interface {
	Name() string
	// Start begins a window: a gate that measures what happens from now
	// on takes its first reading (if that fails, its first sample does).
	Start(ctx context.Context, t Target)
	// Sample judges what happened since the last conclusive sample.
	Sample(ctx context.Context, t Target) Sample
}

// Policy says how long and how often gates are sampled.
type Policy struct {
	Interval time.Duration // between samples
	Duration time.Duration // the window: Run returns when it has passed
	// FailureLimit failing samples of a gate in a row fail it at once,
	// without waiting for the end of the window; < 1 means 1.
	FailureLimit int
}

// ErrGateFailed is wrapped by the error Run returns when a gate fails.
var ErrGateFailed = errors.New("analysis gate failed")

// GateError is a gate that failed: its last sample says why.
type GateError struct {
	Sample  Sample
	InARow  int  // failing samples in a row when it failed
	Expired bool // the window ended without a passing sample
}

func (e *GateError) Error() string {
	switch {
	case e.Expired:
		return fmt.Sprintf("gate %s: no passing sample in the window: %s", e.Sample.Gate, e.Sample)
	case e.InARow > 1:
		return fmt.Sprintf("gate %s failed %d samples in a row: %s", e.Sample.Gate, e.InARow, e.Sample)
	default:
		return fmt.Sprintf("gate %s failed: %s", e.Sample.Gate, e.Sample)
	}
}

func (e *GateError) Unwrap() error { return ErrGateFailed }

// Run samples every gate each p.Interval for p.Duration and returns nil
// when every gate passed. A gate fails as soon as it fails
// p.FailureLimit samples in a row, or at the end of the window if no
// sample of it passed (only inconclusive ones: not enough traffic, no
// data, an unreadable source); the error is a *GateError. target is
// asked before each round (the servers on each release change as a
// rollout advances); report, if not nil, gets each round's samples (one
// per gate, in order) before they are judged, and an error from it stops
// Run with that error (the caller could not record what it saw). When ctx
// ends first, Run returns ctx's error.
func Run(ctx context.Context, gates []Gate, p Policy, target func() Target, report func([]Sample) error) error {
	if len(gates) == 0 {
		return nil
	}
	if p.Interval <= 0 || p.Duration <= 0 {
		return fmt.Errorf("analysis: interval %s and duration %s must be positive", p.Interval, p.Duration)
	}
	limit := max(p.FailureLimit, 1)
	t := target()
	for _, g := range gates {
		g.Start(ctx, t)
	}
	type state struct {
		inARow int
		passed bool
		last   Sample
	}
	states := make([]state, len(gates))
	end := time.NewTimer(p.Duration)
	defer end.Stop()
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-end.C:
			for i, st := range states {
				if !st.passed {
					last := st.last
					if last.Gate == "" {
						last = inconclusive(gates[i].Name(), Condition{}, "no sample was taken")
					}
					return &GateError{Sample: last, Expired: true}
				}
			}
			return nil
		case <-tick.C:
		}
		t := target()
		samples := make([]Sample, len(gates))
		var wg sync.WaitGroup
		for i, g := range gates {
			wg.Add(1)
			go func() {
				defer wg.Done()
				samples[i] = g.Sample(ctx, t)
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := time.Now()
		for i := range samples {
			samples[i].At = now
		}
		if report != nil {
			if err := report(samples); err != nil {
				return err
			}
		}
		for i, s := range samples {
			st := &states[i]
			st.last = s
			switch s.Verdict {
			case Pass:
				st.inARow, st.passed = 0, true
			case Fail:
				st.inARow++
				if st.inARow >= limit {
					return &GateError{Sample: s, InARow: st.inARow}
				}
			}
		}
	}
}
