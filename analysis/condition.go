// Package analysis judges a release by what it does with real traffic:
// gates that sample HAProxy's per-server counters or a Prometheus query
// while the new release serves, compare the value with a threshold or with
// the hosts still on the old release, and fail early after failure_limit
// bad samples in a row.
//
// The package knows nothing of plans or of the engine: the plan loader
// parses conditions with ParseCondition, and the engine runs gates with
// Run, telling it which servers are on which release.
package analysis

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Kind is the unit a metric is measured in, which decides how its
// thresholds are written.
type Kind int

const (
	// Ratio is a share: written "1%" or "0.01".
	Ratio Kind = iota
	// Seconds is a time: written "300ms", "1.5s".
	Seconds
	// Number is a plain number (a Prometheus query's result); "1%" and
	// "300ms" are accepted too and mean 0.01 and 0.3.
	Number
)

// Metric names a value a gate measures.
type Metric struct {
	Name string
	Kind Kind
}

// The metrics of gates.
var (
	// ErrorRate is the share of a server group's requests answered 5xx
	// (or not answered: connection and response errors).
	ErrorRate = Metric{"error_rate", Ratio}
	// ResponseTime is the group's average response time, weighted by
	// requests.
	ResponseTime = Metric{"response_time", Seconds}
	// Result is the number a Prometheus query returns.
	Result = Metric{"result", Number}
)

// Condition is what a gate's value must satisfy, as written in a plan:
// "error_rate < 1%", "response_time <= baseline * 1.2",
// "error_rate <= baseline + 0.5%", "result < 0.05".
type Condition struct {
	Metric Metric
	Op     string  // <, <=, >, >=
	Value  float64 // the threshold, or what baseline is shifted or scaled by
	// Baseline: the threshold is the old release's value, plus Value
	// (Scale false) or times Value (Scale true).
	Baseline bool
	Scale    bool
	text     string
}

// SyntaxError is a condition that does not parse; Col is the 1-based
// column in the condition's text where the problem is.
type SyntaxError struct {
	Col int
	Msg string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("column %d: %s", e.Col, e.Msg) }

// ErrNoBaseline means a relative condition had no old-release value to
// compare with.
var ErrNoBaseline = errors.New("no baseline")

// ParseCondition parses s, allowing the metrics listed.
func ParseCondition(s string, allowed ...Metric) (Condition, error) {
	p := &condParser{s: s}
	c := Condition{text: strings.TrimSpace(s)}

	col, name := p.word()
	if name == "" {
		return c, p.errAt(col, "want a metric name first (%s)", metricNames(allowed))
	}
	found := false
	for _, m := range allowed {
		if m.Name == name {
			c.Metric, found = m, true
		}
	}
	if !found {
		return c, p.errAt(col, "unknown metric %q (want %s)", name, metricNames(allowed))
	}

	col, op := p.op()
	switch op {
	case "<", "<=", ">", ">=":
		c.Op = op
	case "":
		return c, p.errAt(col, "want a comparison (<, <=, >, >=) after %s", name)
	default:
		return c, p.errAt(col, "unknown comparison %q (want <, <=, > or >=)", op)
	}

	p.skipSpace()
	if strings.HasPrefix(p.s[p.i:], "baseline") {
		p.i += len("baseline")
		c.Baseline = true
		p.skipSpace()
		switch {
		case p.i == len(p.s):
			return c, nil // "baseline" alone: no worse than the old release
		case p.s[p.i] == '+' || p.s[p.i] == '*':
			c.Scale = p.s[p.i] == '*'
			p.i++
		default:
			return c, p.errAt(p.i+1, "after baseline, want + or * (baseline + 0.5%%, baseline * 1.2)")
		}
		vcol, tok := p.value()
		if tok == "" {
			return c, p.errAt(vcol, "want a number after %q", p.s[p.i-1:p.i])
		}
		var err error
		if c.Scale {
			c.Value, err = strconv.ParseFloat(tok, 64)
			if err != nil || c.Value <= 0 || math.IsInf(c.Value, 0) {
				return c, p.errAt(vcol, "baseline * wants a positive plain number (1.2), not %q", tok)
			}
		} else if c.Value, err = quantity(tok, c.Metric.Kind); err != nil {
			return c, p.errAt(vcol, "%v", err)
		}
	} else {
		vcol, tok := p.value()
		if tok == "" {
			return c, p.errAt(vcol, "want a threshold or baseline after %s", op)
		}
		var err error
		if c.Value, err = quantity(tok, c.Metric.Kind); err != nil {
			return c, p.errAt(vcol, "%v", err)
		}
	}
	p.skipSpace()
	if p.i < len(p.s) {
		return c, p.errAt(p.i+1, "unexpected %q at the end", p.s[p.i:])
	}
	return c, nil
}

// quantity reads a threshold written for a metric of kind k.
func quantity(tok string, k Kind) (float64, error) {
	if num, ok := strings.CutSuffix(tok, "%"); ok {
		if k == Seconds {
			return 0, fmt.Errorf("%q is a percentage; a time is written like 300ms", tok)
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, fmt.Errorf("%q is not a percentage", tok)
		}
		return v / 100, nil
	}
	if v, err := strconv.ParseFloat(tok, 64); err == nil && !math.IsInf(v, 0) && !math.IsNaN(v) {
		if k == Seconds && v != 0 {
			return 0, fmt.Errorf("%q has no unit; write a time like %gs or %gms", tok, v, v*1000)
		}
		return v, nil
	}
	d, err := time.ParseDuration(tok)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number, a percentage or a time", tok)
	}
	if k == Ratio {
		return 0, fmt.Errorf("%q is a time; a rate is written like 1%% or 0.01", tok)
	}
	return d.Seconds(), nil
}

// Threshold is the bound the value is compared with, given the old
// release's value (used only by a relative condition).
func (c Condition) Threshold(baseline float64) float64 {
	switch {
	case !c.Baseline:
		return c.Value
	case c.Scale:
		return baseline * c.Value
	default:
		return baseline + c.Value
	}
}

// Holds reports whether v satisfies the condition against threshold.
func (c Condition) Holds(v, threshold float64) bool {
	switch c.Op {
	case "<":
		return v < threshold
	case "<=":
		return v <= threshold
	case ">":
		return v > threshold
	default:
		return v >= threshold
	}
}

// String is the condition as written.
func (c Condition) String() string { return c.text }

// Format writes a value of the condition's metric for people: 1.25%,
// 312ms, 0.05.
func (c Condition) Format(v float64) string { return c.Metric.Format(v) }

// Format writes a value of m for people.
func (m Metric) Format(v float64) string {
	switch m.Kind {
	case Ratio:
		return strconv.FormatFloat(v*100, 'g', 4, 64) + "%"
	case Seconds:
		return time.Duration(v * float64(time.Second)).Round(100 * time.Microsecond).String()
	default:
		return strconv.FormatFloat(v, 'g', 6, 64)
	}
}

func metricNames(ms []Metric) string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return strings.Join(names, " or ")
}

type condParser struct {
	s string
	i int
}

func (p *condParser) errAt(col int, format string, a ...any) error {
	return &SyntaxError{Col: col, Msg: fmt.Sprintf(format, a...)}
}

func (p *condParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// word reads a metric name; col is where it starts (1-based).
func (p *condParser) word() (col int, w string) {
	p.skipSpace()
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] == '_' || p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] >= 'A' && p.s[p.i] <= 'Z' || p.s[p.i] >= '0' && p.s[p.i] <= '9') {
		p.i++
	}
	return start + 1, p.s[start:p.i]
}

func (p *condParser) op() (col int, op string) {
	p.skipSpace()
	start := p.i
	for p.i < len(p.s) && strings.IndexByte("<>=!", p.s[p.i]) >= 0 {
		p.i++
	}
	return start + 1, p.s[start:p.i]
}

// value reads a number with an optional unit (1%, 0.01, 300ms, 1.5s).
func (p *condParser) value() (col int, tok string) {
	p.skipSpace()
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != ' ' && p.s[p.i] != '\t' {
		p.i++
	}
	return start + 1, p.s[start:p.i]
}
