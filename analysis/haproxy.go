package analysis

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// Counters are one server's cumulative counters on one HAProxy instance
// (`show stat`): what HAProxy already counts, so that a gate needs no
// other infrastructure.
type Counters struct {
	Requests int64 // req_tot
	Errors   int64 // hrsp_5xx + eresp + econ: answered 5xx, or not answered
	// ResponseTime is HAProxy's rtime: the average over the server's last
	// 512 responses (HAProxy says 1024; see rtimeSamples).
	ResponseTime time.Duration
}

// CounterSource reads every server's counters from one HAProxy instance,
// keyed "backend/server".
type CounterSource interface {
	Counters(ctx context.Context) (map[string]Counters, error)
}

// HAProxyGate judges the servers on the new release by the error rate or
// the response time HAProxy measured for them since the last conclusive
// sample, against a threshold or against the servers still on the old
// release. Counters are summed over every instance.
type HAProxyGate struct {
	name        string
	cond        Condition
	minRequests int64
	sources     []CounterSource

	mu       sync.Mutex
	base     map[string]Counters // the reading the current window started from
	baseline *float64            // the old release's last value, for when none is left
}

// NewHAProxyGate returns a gate on cond (error_rate or response_time).
// Below minRequests requests to the new release in a window, a sample is
// inconclusive and the window grows until there are enough.
func NewHAProxyGate(name string, cond Condition, minRequests int64, sources ...CounterSource) (*HAProxyGate, error) {
	if cond.Metric != ErrorRate && cond.Metric != ResponseTime {
		return nil, fmt.Errorf("gate %s: HAProxy measures error_rate and response_time, not %s", name, cond.Metric.Name)
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("gate %s: no HAProxy instance to read", name)
	}
	return &HAProxyGate{name: name, cond: cond, minRequests: max(minRequests, 1), sources: sources}, nil
}

// Name is the gate's name.
func (g *HAProxyGate) Name() string { return g.name }

// SeedBaseline gives a relative gate the old release's value seen before
// it existed (by a leader that ran the earlier batches), for when no
// server is left on the old release; a value it measures itself replaces it.
func (g *HAProxyGate) SeedBaseline(v float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.baseline == nil {
		g.baseline = &v
	}
}

// Start takes the window's first reading.
func (g *HAProxyGate) Start(ctx context.Context, _ Target) {
	cur, err := g.read(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.base = nil
	if err == nil {
		g.base = cur
	}
}

// Sample judges the new release's servers since the window began.
func (g *HAProxyGate) Sample(ctx context.Context, t Target) Sample {
	cur, err := g.read(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		return inconclusive(g.name, g.cond, "reading HAProxy: %v", err)
	}
	if g.base == nil {
		g.base = cur
		return inconclusive(g.name, g.cond, "first reading of HAProxy's counters")
	}
	newer := delta(g.base, cur, t.New)
	if newer.Requests < g.minRequests {
		return inconclusive(g.name, g.cond, "not enough traffic: %d requests to the new release, at least %d needed", newer.Requests, g.minRequests)
	}
	var baseline *float64
	if g.cond.Baseline {
		if older := delta(g.base, cur, t.Old); older.Requests >= g.minRequests {
			v := older.value(g.cond.Metric)
			g.baseline = &v
		}
		if g.baseline == nil {
			return inconclusive(g.name, g.cond, "no baseline: %d requests to the old release, at least %d needed", delta(g.base, cur, t.Old).Requests, g.minRequests)
		}
		v := *g.baseline
		baseline = &v
	}
	g.base = cur // the next sample judges a fresh window
	s := judged(g.name, g.cond, newer.value(g.cond.Metric), baseline)
	s.Requests = newer.Requests
	return s
}

// read sums every instance's counters per server.
func (g *HAProxyGate) read(ctx context.Context) (map[string]Counters, error) {
	sum := map[string]Counters{}
	for _, src := range g.sources {
		cs, err := src.Counters(ctx)
		if err != nil {
			return nil, err
		}
		for k, c := range cs {
			s := sum[k]
			// Response times are averaged by requests when summed.
			if tot := s.Requests + c.Requests; tot > 0 {
				s.ResponseTime = time.Duration((int64(s.ResponseTime)*s.Requests + int64(c.ResponseTime)*c.Requests) / tot)
			}
			s.Requests += c.Requests
			s.Errors += c.Errors
			sum[k] = s
		}
	}
	return sum, nil
}

// window is what a group of servers did between two readings.
type window struct {
	Requests, Errors int64
	rtWeighted       float64 // sum of response time (s) x requests
}

func delta(before, after map[string]Counters, servers []string) window {
	var w window
	for _, s := range servers {
		a, b := after[s], before[s]
		req, errs := a.Requests-b.Requests, a.Errors-b.Errors
		if req < 0 || errs < 0 { // HAProxy reloaded: counters start over
			req, errs, b = a.Requests, a.Errors, Counters{}
		}
		w.Requests += req
		w.Errors += errs
		w.rtWeighted += windowResponseTime(b, a, req) * float64(req)
	}
	return w
}

// rtimeSamples is the window of HAProxy's rtime, a sliding sum that each
// response moves by 1/rtimeSamples of the way: HAProxy's
// TIME_STATS_SAMPLES, 512 (its manual says "the 1024 last requests"; its
// source explains that averaging over 1k samples measures over 512). The
// lab confirmed it: unwound with 1024, a 150ms release read as 300ms.
const rtimeSamples = 512

// windowResponseTime is the mean response time (seconds) of the k
// responses a server gave between readings b and a. rtime lags: on a
// server that served 512 responses of the old release it would take
// hundreds of slow ones to move, so it is unwound: while fewer than 512
// responses are counted rtime is their plain mean, after that each
// response keeps (1 - 1/512) of the average. rtime is whole
// milliseconds, so the result is within about 512/k ms: tight for a busy
// server, loose but still telling for a slow one, which answers few.
func windowResponseTime(b, a Counters, k int64) float64 {
	if k <= 0 {
		return 0
	}
	r0, r1 := b.ResponseTime.Seconds(), a.ResponseTime.Seconds()
	var x float64
	if a.Requests <= rtimeSamples {
		x = (float64(a.Requests)*r1 - float64(b.Requests)*r0) / float64(k)
	} else {
		keep := math.Pow(1-1.0/rtimeSamples, float64(k))
		x = (r1 - keep*r0) / (1 - keep)
	}
	return max(x, 0)
}

func (w window) value(m Metric) float64 {
	if w.Requests == 0 {
		return 0
	}
	if m == ResponseTime {
		return w.rtWeighted / float64(w.Requests)
	}
	return min(float64(w.Errors)/float64(w.Requests), 1)
}
