package plans

import (
	"errors"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/drover-dev/drover/analysis"
	"github.com/goccy/go-yaml/ast"
)

// Analysis is how each batch is judged by its metrics once it is back in
// rotation: every gate is sampled each Interval for Duration, and fails
// early after FailureLimit failing samples in a row (package analysis).
type Analysis struct {
	Interval     time.Duration `json:"interval"`      // default 5s
	Duration     time.Duration `json:"duration"`      // default 30s
	FailureLimit int           `json:"failure_limit"` // default 2
	// MinRequests is how many requests an HAProxy gate needs in a sample
	// before it judges one (default 50): below, "not enough traffic".
	MinRequests int `json:"min_requests"`
	// Prometheus is the server the Prometheus gates ask; nil without one.
	Prometheus *PrometheusServer `json:"prometheus,omitempty"`
	Gates      []Gate            `json:"gates"`
}

// PrometheusServer is a Prometheus HTTP API.
type PrometheusServer struct {
	URL string `json:"url"`
}

// Gate is one check of the release's metrics: exactly one of HAProxy and
// Prometheus is set.
type Gate struct {
	Name string `json:"name"`
	// HAProxy is a condition on the counters HAProxy keeps for the
	// servers on the new release: "error_rate < 1%",
	// "response_time <= baseline * 1.2".
	HAProxy    string          `json:"haproxy,omitempty"`
	Prometheus *PrometheusGate `json:"prometheus,omitempty"`
}

// PrometheusGate is a PromQL query (a template over {{.Hosts}},
// {{.Version}} and {{.Deployment}}) returning one number, and the
// condition that number must meet ("result < 1%").
type PrometheusGate struct {
	Query     string `json:"query"`
	Condition string `json:"condition"`
}

// Defaults of analysis:.
const (
	DefaultAnalysisInterval = 5 * time.Second
	DefaultAnalysisDuration = 30 * time.Second
	DefaultFailureLimit     = 2
	DefaultMinRequests      = 50
)

var (
	analysisKeys     = []string{"interval", "duration", "failure_limit", "min_requests", "prometheus", "gates"}
	promServerKeys   = []string{"url"}
	gateKeys         = []string{"name", "haproxy", "prometheus"}
	promGateKeys     = []string{"query", "condition"}
	haproxyMetrics   = []analysis.Metric{analysis.ErrorRate, analysis.ResponseTime}
	prometheusMetric = []analysis.Metric{analysis.Result}
)

// HasGates reports whether the plan judges batches by metrics.
func (p *Plan) HasGates() bool { return p.Analysis != nil && len(p.Analysis.Gates) > 0 }

// analysis decodes the optional analysis: section.
func (l *loader) analysis(top *mapping, p *Plan) {
	am, ok := top.OptMapping("analysis", analysisKeys...)
	if !ok || am == nil {
		return
	}
	a := &Analysis{}
	var ivP, durP pos
	var ivOK, durOK bool
	a.Interval, ivP, ivOK = am.Duration("interval", DefaultAnalysisInterval, positive)
	a.Duration, durP, durOK = am.Duration("duration", DefaultAnalysisDuration, positive)
	if ivOK && durOK && a.Duration < a.Interval {
		at := durP
		if !am.Has("duration") {
			at = ivP
		}
		l.errorf(at, "analysis: duration (%s) must be at least interval (%s): the window holds at least one sample", fmtDuration(a.Duration), fmtDuration(a.Interval))
	}
	a.FailureLimit, _, _ = am.Integer("failure_limit", DefaultFailureLimit, 1, 1000)
	a.MinRequests, _, _ = am.Integer("min_requests", DefaultMinRequests, 1, maxInt)
	if pm, ok := am.OptMapping("prometheus", promServerKeys...); ok && pm != nil {
		if u, up, ok := pm.NonEmpty("url", true, "the Prometheus server, e.g. http://prometheus:9090"); ok {
			if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				l.errorf(up, "analysis.prometheus.url: must be an http:// or https:// URL with a host, got %s", quote(u))
			} else {
				a.Prometheus = &PrometheusServer{URL: u}
				l.at("analysis.prometheus.url", up)
			}
		}
	}
	v, present, ok := am.Get("gates")
	switch {
	case !present:
		am.Missing("gates", "what to judge, e.g. [{name: errors, haproxy: \"error_rate < 1%\"}]")
	case !ok:
	case v.K != kSeq || len(v.N.(*ast.SequenceNode).Values) == 0:
		l.errorf(v.P, "analysis.gates: must be a non-empty list of gates like {name: errors, haproxy: \"error_rate < 1%%\"}, got %s", v)
	default:
		seen := map[string]pos{}
		for i, e := range v.N.(*ast.SequenceNode).Values {
			path := index("analysis.gates", i)
			ev, ok := am.D.Value(e, path)
			if !ok {
				continue
			}
			gm, ok := am.D.Mapping(ev, path, gateKeys...)
			if !ok {
				continue
			}
			if g, ok := l.gate(gm, path, p, am.Has("prometheus"), seen); ok {
				a.Gates = append(a.Gates, g)
			}
		}
	}
	p.Analysis = a
}

// gate decodes one entry of analysis.gates.
func (l *loader) gate(gm *mapping, path string, p *Plan, hasProm bool, seen map[string]pos) (Gate, bool) {
	var g Gate
	good := true
	if name, np, ok := gm.NonEmpty("name", true, "names the gate in events, e.g. errors"); ok {
		if prev, dup := seen[name]; dup {
			l.errorf(np, "%s.name: %s is already the name of a gate (line %d)", path, quote(name), prev.Line)
			good = false
		} else if !IsSafeName(name) {
			l.errorf(np, "%s.name: must be a safe name (%s), got %s", path, safeNameRule, quote(name))
			good = false
		} else {
			seen[name] = np
			g.Name = name
		}
	} else {
		good = false
	}
	switch {
	case gm.Has("haproxy") && gm.Has("prometheus"):
		l.errorf(gm.KeyPos("prometheus"), "%s: set haproxy or prometheus, not both (one gate, one source)", path)
		return g, false
	case gm.Has("haproxy"):
		cond, cp, ok := gm.NonEmpty("haproxy", false, "")
		if !ok {
			return g, false
		}
		if len(p.LoadBalancer.HAProxy) == 0 {
			l.errorf(gm.KeyPos("haproxy"), "%s.haproxy: an HAProxy gate reads the counters of load_balancer.haproxy, which the plan does not set", path)
			return g, false
		}
		if !condition(gm, path+".haproxy", cond, cp, haproxyMetrics) {
			return g, false
		}
		if c, _ := analysis.ParseCondition(cond, haproxyMetrics...); c.Baseline {
			l.relativeAt = append(l.relativeAt, cp)
		}
		g.HAProxy = cond
	case gm.Has("prometheus"):
		pm, ok := gm.OptMapping("prometheus", promGateKeys...)
		if !ok {
			return g, false
		}
		if pm == nil {
			l.errorf(gm.KeyPos("prometheus"), "%s.prometheus: must be a mapping with query and condition", path)
			return g, false
		}
		ppath := path + ".prometheus"
		if !hasProm {
			l.errorf(gm.KeyPos("prometheus"), "%s: a Prometheus gate needs the server: set analysis.prometheus.url", ppath)
			good = false
		}
		query, qp, qok := pm.NonEmpty("query", true, `PromQL returning one number, e.g. sum(rate(http_requests_total{code=~"5..",host=~"{{.Hosts}}"}[30s]))`)
		cond, cp, cok := pm.NonEmpty("condition", true, `what the number must meet, e.g. "result < 1%"`)
		if !qok || !cok || !condition(pm, ppath+".condition", cond, cp, prometheusMetric) {
			return g, false
		}
		c, _ := analysis.ParseCondition(cond, prometheusMetric...)
		if c.Baseline {
			l.errorf(cp, "%s.condition: a Prometheus gate compares its result with a number; put the old release in the query itself", ppath)
			return g, false
		}
		if _, err := analysis.NewPrometheusGate(g.Name, query, c, &analysis.Prometheus{}); err != nil {
			msg := err.Error()
			if _, after, ok := strings.Cut(msg, "query: "); ok {
				msg = after
			}
			l.errorf(qp, "%s.query: %s", ppath, msg)
			return g, false
		}
		g.Prometheus = &PrometheusGate{Query: query, Condition: cond}
	default:
		gm.D.Errorf(gm.P, "%s: set haproxy (a condition on HAProxy's counters) or prometheus (a query and a condition)", path)
		return g, false
	}
	return g, good
}

// condition parses a gate's condition written at p and reports a syntax
// error at its own column when the scalar allows it.
func condition(m *mapping, path, s string, p pos, metrics []analysis.Metric) bool {
	_, err := analysis.ParseCondition(s, metrics...)
	if err == nil {
		return true
	}
	var se *analysis.SyntaxError
	if errors.As(err, &se) {
		m.D.Errorf(inScalar(m.D, p, s, se.Col), "%s: %s", path, se.Msg)
	} else {
		m.D.Errorf(p, "%s: %v", path, err)
	}
	return false
}

// inScalar is where the col-th (1-based) character of the value s, written
// at p, is in the file: exact for a scalar written on one line, plain or
// quoted without escapes; otherwise the scalar's start.
func inScalar(d *doc, p pos, s string, col int) pos {
	line := d.Line(p.Line)
	text := line[colOffset(line, p.Col):]
	shift := 0
	if strings.HasPrefix(text, `"`) || strings.HasPrefix(text, `'`) {
		text, shift = text[1:], 1
	}
	if !strings.HasPrefix(text, s) {
		return p
	}
	return pos{File: p.File, Line: p.Line, Col: p.Col + shift + utf8.RuneCountInString(s[:colOffset(s, col)])}
}

// checkBaseline refuses a gate relative to the old release in a plan whose
// first batch takes every host: no host would be left on the old release
// to compare with, and the gate could never pass.
func (l *loader) checkBaseline(p *Plan) {
	if len(l.relativeAt) == 0 {
		return
	}
	if b := p.Batches(); len(b) == 1 {
		for _, at := range l.relativeAt {
			l.errorf(at, "analysis: a gate relative to the old release (baseline) needs hosts still on it, but the first batch takes all %d hosts; use a smaller batch or an absolute threshold", len(p.Hosts))
		}
	}
}
