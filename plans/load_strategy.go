package plans

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/plans/yamlpos"
	"github.com/goccy/go-yaml/ast"
)

// ---- strategy ----

func (l *loader) strategy(top *mapping, p *Plan) (at []sizeAt, minAt sizeAt) {
	p.Strategy = Strategy{Batches: []Size{{N: 1}}, MinInService: Size{N: 1}, Concurrency: DefaultConcurrency}
	// Where each ramp entry and min_in_service were written, for the
	// outage check (no strategy block: both are defaults, at the top).
	at = []sizeAt{{top.P, "strategy.batch (default 1)"}}
	minAt = sizeAt{top.P, "strategy.min_in_service (default 1)"}
	sm, ok := top.OptMapping("strategy", strategyKeys...)
	if !ok || sm == nil {
		return at, minAt
	}
	switch {
	case sm.Has("batch") && sm.Has("batches"):
		later := "batches"
		if sm.KeyPos("batch").Line > sm.KeyPos("batches").Line {
			later = "batch"
		}
		l.errorf(sm.KeyPos(later), "strategy: set batch or batches, not both")
	case sm.Has("batch"):
		if v, _, ok := sm.Get("batch"); ok {
			if s, ok := l.size(sm.D, v, "strategy.batch", true); ok {
				p.Strategy.Batches = []Size{s}
				at = []sizeAt{{v.P, "strategy.batch"}}
			}
		}
	case sm.Has("batches"):
		if v, _, ok := sm.Get("batches"); ok {
			if v.K != kSeq || len(v.N.(*ast.SequenceNode).Values) == 0 {
				l.errorf(v.P, "strategy.batches: must be a non-empty list of batch sizes like [1, 5, \"20%%\"], got %s", v)
			} else {
				var ramp []Size
				var rampAt []sizeAt
				good := true
				for i, e := range v.N.(*ast.SequenceNode).Values {
					path := index("strategy.batches", i)
					ev, ok := sm.D.Value(e, path)
					if !ok {
						good = false
						continue
					}
					s, ok := l.size(sm.D, ev, path, true)
					good = good && ok
					ramp = append(ramp, s)
					rampAt = append(rampAt, sizeAt{ev.P, path})
				}
				if good {
					p.Strategy.Batches, at = ramp, rampAt
				}
			}
		}
	}
	if v, _, ok := sm.Get("max_failures"); ok {
		if s, ok := l.size(sm.D, v, "strategy.max_failures", false); ok {
			// Checked against the hosts by resolve (they may be in the
			// inventory).
			p.Strategy.MaxFailures, l.later.maxFailuresAt = s, v.P
		}
	}
	p.Strategy.Pause, _, _ = sm.Duration("pause", 0, nonNegative)
	if v, _, ok := sm.Get("min_in_service"); ok {
		if s, ok := l.size(sm.D, v, "strategy.min_in_service", true); ok {
			p.Strategy.MinInService, minAt = s, sizeAt{v.P, "strategy.min_in_service"}
		}
	}
	p.Strategy.AllowFullOutage, _ = sm.Boolean("allow_full_outage", false)
	p.Strategy.Concurrency, _, _ = sm.Integer("concurrency", DefaultConcurrency, 1, 1024)
	if canaryAt, ok := l.canary(sm, p); ok {
		at = append([]sizeAt{canaryAt}, at...) // the canary is the first batch
	}
	return at, minAt
}

// sizeAt is where a batch size (or min_in_service) was written.
type sizeAt struct {
	p    pos
	path string
}

// checkOutage refuses a batch that would leave fewer than min_in_service
// servers of a backend in rotation (with the default of 1: a batch that
// drains a whole backend), unless allow_full_outage is set. It counts the
// servers the plan names; the engine counts the balancer's own view, and
// servers already down, as it goes.
func (l *loader) checkOutage(p *Plan, at []sizeAt, minAt sizeAt) {
	if !p.hasBalancer() || p.Strategy.AllowFullOutage || len(p.Hosts) == 0 {
		return
	}
	total := p.BackendSizes()
	reported := map[string]bool{}
	for i, batch := range p.Batches() {
		where := at[min(i, len(at)-1)]
		inBatch := map[string]int{}
		for _, h := range batch {
			if b := h.Backend(); b != "" {
				inBatch[b]++
			}
		}
		for _, b := range slices.Sorted(maps.Keys(inBatch)) {
			n, k := total[b], inBatch[b]
			need := p.MinInService(b)
			if n-k >= need || reported[b] {
				continue
			}
			reported[b] = true
			switch {
			case n-k == 0 && n <= need:
				l.errorf(where.p, "%s: backend %s has %s in this plan, so any batch takes it all out of rotation (an outage); add servers, or set strategy.allow_full_outage: true to accept an outage",
					where.path, b, plural(n, "server"))
			case n-k == 0:
				l.errorf(where.p, "%s: batch %d takes all %s of backend %s out of rotation at once (an outage); use at most %d, or set strategy.allow_full_outage: true to accept an outage",
					where.path, i+1, plural(n, "server"), b, n-need)
			case n <= need:
				l.errorf(minAt.p, "%s: %d of backend %s's %s must stay in rotation, which leaves none to deploy to; lower it, or set strategy.allow_full_outage: true to accept an outage",
					minAt.path, need, b, plural(n, "server"))
			default:
				l.errorf(where.p, "%s: batch %d takes %d of backend %s's %s out of rotation, leaving %d, fewer than strategy.min_in_service=%d; use at most %d per batch, or set strategy.allow_full_outage: true",
					where.path, i+1, k, b, plural(n, "server"), n-k, need, n-need)
			}
		}
	}
}

// size decodes a count or a percentage. A batch size must be positive; a
// failure budget may be 0.
func (l *loader) size(d *doc, v value, path string, batch bool) (Size, bool) {
	expect := `a positive count or a percentage like "25%"`
	if !batch {
		expect = `a count (0 or more) or a percentage like "10%"`
	}
	var text string
	switch v.K {
	case kInt:
		text = v.Text
		n, _ := yamlpos.IntValue(v)
		if n < 0 || n == 0 && batch || n > maxInt {
			l.errorf(v.P, "%s: must be %s, got %s", path, expect, v)
			return Size{}, false
		}
		return Size{N: int(n)}, true
	case kString:
		text = v.Text
	default:
		l.errorf(v.P, "%s: must be %s, got %s", path, expect, v)
		return Size{}, false
	}
	if m := percentRE.FindStringSubmatch(text); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 || n > 100 {
			l.errorf(v.P, "%s: a percentage must be between 1%% and 100%%, got %s", path, v)
			return Size{}, false
		}
		return Size{N: n, Percent: true}, true
	}
	if countRE.MatchString(text) {
		n, err := strconv.Atoi(strings.TrimSpace(text))
		if err == nil && n <= maxInt && (n > 0 || !batch) {
			return Size{N: n}, true
		}
	}
	l.errorf(v.P, "%s: must be %s, got %s", path, expect, v)
	return Size{}, false
}
