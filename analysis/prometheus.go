package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Prometheus asks a Prometheus server for one number (its HTTP API,
// /api/v1/query).
type Prometheus struct {
	URL    string       // e.g. http://prometheus:9090
	Client *http.Client // nil: a client with a 10 s timeout
}

// ErrNoData means a query returned no series: nothing to judge yet.
var ErrNoData = errors.New("no data")

// Query evaluates q now and returns its single value: a scalar, or a vector
// of exactly one series (aggregate with sum(), avg(), ... otherwise).
func (p *Prometheus) Query(ctx context.Context, q string) (float64, error) {
	u, err := url.Parse(strings.TrimSuffix(p.URL, "/") + "/api/v1/query")
	if err != nil {
		return 0, fmt.Errorf("prometheus url %q: %w", p.URL, err)
	}
	u.RawQuery = url.Values{"query": {q}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	c := p.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("prometheus: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("prometheus: reading the answer: %w", err)
	}
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("prometheus: HTTP %d, not an API answer: %.200q", resp.StatusCode, body)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s: %s", r.ErrorType, r.Error)
	}
	switch r.Data.ResultType {
	case "scalar":
		var pair []any
		if err := json.Unmarshal(r.Data.Result, &pair); err != nil || len(pair) != 2 {
			return 0, fmt.Errorf("prometheus: malformed scalar %s", r.Data.Result)
		}
		return sampleValue(pair[1])
	case "vector":
		var series []struct {
			Value []any `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &series); err != nil {
			return 0, fmt.Errorf("prometheus: malformed vector: %v", err)
		}
		switch {
		case len(series) == 0:
			return 0, ErrNoData
		case len(series) > 1:
			return 0, fmt.Errorf("prometheus: the query returned %d series; a gate needs one number (aggregate it: sum(...), avg(...))", len(series))
		case len(series[0].Value) != 2:
			return 0, fmt.Errorf("prometheus: malformed sample %v", series[0].Value)
		}
		return sampleValue(series[0].Value[1])
	default:
		return 0, fmt.Errorf("prometheus: the query returned a %s; a gate needs one number (an instant vector of one series, or a scalar)", r.Data.ResultType)
	}
}

func sampleValue(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("prometheus: sample value %v is not a string", v)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("prometheus: sample value %q: %w", s, err)
	}
	if math.IsNaN(f) {
		return 0, ErrNoData // 0/0: a rate of nothing
	}
	return f, nil
}

// QueryData is what a gate's query template sees.
type QueryData struct {
	// Hosts is a regular expression matching exactly the names of the
	// hosts on the new release (web1|web2), escaped to sit inside a
	// double-quoted PromQL string: host=~"{{.Hosts}}".
	Hosts      string
	Version    string
	Deployment string
}

// PrometheusGate judges the number a PromQL query returns.
type PrometheusGate struct {
	name  string
	query *template.Template
	cond  Condition
	prom  *Prometheus
}

// NewPrometheusGate returns a gate that evaluates query (a text/template
// over QueryData) and compares the result with cond.
func NewPrometheusGate(name, query string, cond Condition, prom *Prometheus) (*PrometheusGate, error) {
	if cond.Baseline {
		return nil, fmt.Errorf("gate %s: a Prometheus gate compares with a number; put the old release in the query itself", name)
	}
	tpl, err := template.New(name).Option("missingkey=error").Parse(query)
	if err != nil {
		return nil, fmt.Errorf("gate %s: query: %w", name, err)
	}
	if err := tpl.Execute(io.Discard, QueryData{}); err != nil {
		return nil, fmt.Errorf("gate %s: query: %w (it can use {{.Hosts}}, {{.Version}} and {{.Deployment}})", name, err)
	}
	return &PrometheusGate{name: name, query: tpl, cond: cond, prom: prom}, nil
}

// Name is the gate's name.
func (g *PrometheusGate) Name() string { return g.name }

// Start does nothing: the query says over which range it looks.
func (g *PrometheusGate) Start(context.Context, Target) {}

// Sample runs the query for the hosts on the new release.
func (g *PrometheusGate) Sample(ctx context.Context, t Target) Sample {
	q, err := g.render(t)
	if err != nil {
		return inconclusive(g.name, g.cond, "query: %v", err)
	}
	v, err := g.prom.Query(ctx, q)
	if errors.Is(err, ErrNoData) {
		return inconclusive(g.name, g.cond, "no data for %s", q)
	}
	if err != nil {
		return inconclusive(g.name, g.cond, "%v", err)
	}
	return judged(g.name, g.cond, v, nil)
}

func (g *PrometheusGate) render(t Target) (string, error) {
	quoted := make([]string, len(t.Hosts))
	for i, h := range t.Hosts {
		quoted[i] = strings.ReplaceAll(regexp.QuoteMeta(h), `\`, `\\`)
	}
	var b strings.Builder
	err := g.query.Execute(&b, QueryData{Hosts: strings.Join(quoted, "|"), Version: t.Version, Deployment: t.Deployment})
	return b.String(), err
}
