package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// counterScript is an HAProxy instance whose counters the test sets.
type counterScript struct {
	mu  sync.Mutex
	cs  map[string]Counters
	err error
}

func (c *counterScript) Counters(context.Context) (map[string]Counters, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]Counters{}
	for k, v := range c.cs {
		out[k] = v
	}
	return out, c.err
}

// serve adds traffic to a server: n requests, errs of them failed, at
// response time rt.
func (c *counterScript) serve(server string, n, errs int64, rt time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cs == nil {
		c.cs = map[string]Counters{}
	}
	v := c.cs[server]
	v.Requests += n
	v.Errors += errs
	v.ResponseTime = rt
	c.cs[server] = v
}

func TestHAProxyGate(t *testing.T) {
	target := Target{New: []string{"web/web1", "web/web2"}, Old: []string{"web/web3", "web/web4"}}
	type traffic struct {
		server  string
		n, errs int64
		rt      time.Duration
	}
	for _, tc := range []struct {
		name    string
		cond    string
		min     int64
		rounds  [][]traffic // one per sample
		want    []Verdict
		detail  string // of the last sample
		value   float64
		noStart bool
	}{
		{name: "absolute error rate passes", cond: "error_rate < 1%", min: 10,
			rounds: [][]traffic{{{"web/web1", 100, 0, 0}, {"web/web2", 100, 1, 0}}},
			want:   []Verdict{Pass}, value: 0.005},
		{name: "absolute error rate fails", cond: "error_rate < 1%", min: 10,
			rounds: [][]traffic{{{"web/web1", 100, 5, 0}, {"web/web2", 100, 5, 0}, {"web/web3", 100, 0, 0}}},
			want:   []Verdict{Fail}, value: 0.05},
		{name: "not enough traffic, then the window grows", cond: "error_rate < 1%", min: 100,
			rounds: [][]traffic{{{"web/web1", 40, 4, 0}}, {{"web/web1", 60, 1, 0}}},
			want:   []Verdict{Inconclusive, Fail}, value: 0.05},
		{name: "each conclusive sample judges a fresh window", cond: "error_rate < 1%", min: 10,
			rounds: [][]traffic{{{"web/web1", 100, 10, 0}}, {{"web/web1", 100, 0, 0}}},
			want:   []Verdict{Fail, Pass}, value: 0},
		{name: "relative error rate", cond: "error_rate <= baseline + 0.5%", min: 10,
			rounds: [][]traffic{{{"web/web1", 100, 2, 0}, {"web/web3", 100, 2, 0}}, {{"web/web1", 100, 3, 0}, {"web/web3", 100, 2, 0}}},
			want:   []Verdict{Pass, Fail}, value: 0.03},
		{name: "relative response time weighted by requests", cond: "response_time <= baseline * 1.2", min: 10,
			rounds: [][]traffic{{{"web/web1", 100, 0, 300 * time.Millisecond}, {"web/web2", 300, 0, 100 * time.Millisecond}, {"web/web3", 100, 0, 100 * time.Millisecond}}},
			want:   []Verdict{Fail}, value: 0.15},
		// rtime is the mean of every response so far (fewer than 512): from
		// 100ms over 100 to 200ms over 200, the last 100 took 300ms.
		{name: "no baseline left keeps the last one", cond: "response_time <= baseline * 1.2", min: 10,
			rounds: [][]traffic{{{"web/web1", 100, 0, 100 * time.Millisecond}, {"web/web3", 100, 0, 100 * time.Millisecond}}, {{"web/web1", 100, 0, 200 * time.Millisecond}}},
			want:   []Verdict{Pass, Fail}, value: 0.3},
		{name: "no baseline at all", cond: "error_rate <= baseline", min: 10,
			rounds: [][]traffic{{{"web/web1", 100, 0, 0}}},
			want:   []Verdict{Inconclusive}, detail: "no baseline: 0 requests to the old release, at least 10 needed"},
		{name: "the first reading failed", cond: "error_rate < 1%", min: 10, noStart: true,
			rounds: [][]traffic{{{"web/web1", 100, 50, 0}}, {{"web/web1", 100, 0, 0}}},
			want:   []Verdict{Inconclusive, Pass}, value: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cond, err := ParseCondition(tc.cond, ErrorRate, ResponseTime)
			if err != nil {
				t.Fatal(err)
			}
			// Two instances, each seeing half of the traffic.
			a, b := &counterScript{}, &counterScript{}
			g, err := NewHAProxyGate("g", cond, tc.min, a, b)
			if err != nil {
				t.Fatal(err)
			}
			if tc.noStart {
				a.err = errors.New("connection refused")
			}
			g.Start(t.Context(), target)
			a.err = nil
			var s Sample
			for i, round := range tc.rounds {
				for _, tr := range round {
					a.serve(tr.server, tr.n/2, tr.errs/2, tr.rt)
					b.serve(tr.server, tr.n-tr.n/2, tr.errs-tr.errs/2, tr.rt)
				}
				s = g.Sample(t.Context(), target)
				if s.Verdict != tc.want[i] {
					t.Fatalf("sample %d: %s (%s), want %s", i+1, s.Verdict, s, tc.want[i])
				}
			}
			if tc.detail != "" && s.Detail != tc.detail {
				t.Errorf("detail = %q, want %q", s.Detail, tc.detail)
			}
			if s.Verdict != Inconclusive && !near(s.Value, tc.value) {
				t.Errorf("value = %g, want %g", s.Value, tc.value)
			}
		})
	}
}

// HAProxy's rtime on a busy server is a sliding average of its last 512
// responses: a slow release barely moves it at first. The gate unwinds
// it to the window's own mean.
func TestHAProxyGateUnwindsRtime(t *testing.T) {
	// haproxy keeps rtime as HAProxy does (swrate: sum += v - (sum+n/2)/n,
	// shown as (sum+n/2)/n in whole milliseconds).
	type server struct{ sum, n int64 }
	serve := func(s *server, count int, ms int64) {
		for range count {
			win := min(s.n+1, rtimeSamples)
			s.sum += ms - (s.sum+win/2)/win
			s.n++
		}
	}
	rtime := func(s server) time.Duration {
		win := min(s.n, rtimeSamples)
		return time.Duration((s.sum+win/2)/win) * time.Millisecond
	}
	for _, tc := range []struct {
		name     string
		before   int   // responses at 1ms before the window
		k        int   // responses in the window
		ms       int64 // their time
		min, max float64
	}{
		{"busy server, slow release", 50000, 40, 150, 0.120, 0.180},
		{"busy server, good release", 50000, 1000, 1, 0, 0.003},
		{"young server", 100, 40, 150, 0.120, 0.180},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s server
			serve(&s, tc.before, 1)
			src := &counterScript{cs: map[string]Counters{"web/web1": {Requests: s.n, ResponseTime: rtime(s)}}}
			cond, _ := ParseCondition("response_time < 1s", ResponseTime)
			g, _ := NewHAProxyGate("latency", cond, 10, src)
			g.Start(t.Context(), Target{New: []string{"web/web1"}})
			serve(&s, tc.k, tc.ms)
			src.cs["web/web1"] = Counters{Requests: s.n, ResponseTime: rtime(s)}
			smp := g.Sample(t.Context(), Target{New: []string{"web/web1"}})
			t.Logf("rtime %s, window mean %.1fms", rtime(s), smp.Value*1000)
			if smp.Verdict == Inconclusive || smp.Value < tc.min || smp.Value > tc.max {
				t.Errorf("window mean %.4fs (%s), want %.3f-%.3fs", smp.Value, smp.Verdict, tc.min, tc.max)
			}
		})
	}
}

// A gate seeded with the old release's value judges the last batch, where
// no server is left on the old release, as the gate that saw it would.
func TestHAProxyGateSeedBaseline(t *testing.T) {
	cond, _ := ParseCondition("response_time <= baseline + 20ms", ResponseTime)
	src := &counterScript{}
	g, _ := NewHAProxyGate("latency", cond, 10, src)
	all := Target{New: []string{"web/web1", "web/web2"}}
	g.Start(t.Context(), all)
	src.serve("web/web1", 100, 0, 100*time.Millisecond)
	if s := g.Sample(t.Context(), all); s.Verdict != Inconclusive {
		t.Fatalf("unseeded: %s, want inconclusive (no baseline)", s)
	}
	g.SeedBaseline(0.09)
	src.serve("web/web1", 100, 0, 100*time.Millisecond)
	if s := g.Sample(t.Context(), all); s.Verdict != Pass || s.Baseline == nil || !near(*s.Baseline, 0.09) {
		t.Fatalf("seeded: %s (baseline %v), want a pass against 90ms", s, s.Baseline)
	}
}

func TestHAProxyGateCounterReset(t *testing.T) {
	cond, _ := ParseCondition("error_rate < 1%", ErrorRate)
	src := &counterScript{}
	src.serve("web/web1", 1000, 0, 0)
	g, _ := NewHAProxyGate("g", cond, 10, src)
	g.Start(t.Context(), Target{New: []string{"web/web1"}})
	src.cs["web/web1"] = Counters{Requests: 50, Errors: 10} // reloaded, then 50 requests
	if s := g.Sample(t.Context(), Target{New: []string{"web/web1"}}); s.Verdict != Fail || !near(s.Value, 0.2) || s.Requests != 50 {
		t.Fatalf("after a reload: %+v", s)
	}
}

func TestSampleString(t *testing.T) {
	cond, _ := ParseCondition("response_time <= baseline * 1.2", ResponseTime)
	base := 0.1
	s := judged("latency", cond, 0.25, &base)
	s.Requests = 812
	if got, want := s.String(), "response_time 250ms (want response_time <= baseline * 1.2 = 120ms; 812 requests)"; got != want {
		t.Errorf("String() = %q\nwant        %q", got, want)
	}
	// Read back from JSON (an event, the replicated log), it says the same.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Sample
	if err := json.Unmarshal(b, &back); err != nil || back.String() != s.String() {
		t.Errorf("after JSON: %q (%v), want %q", back.String(), err, s.String())
	}
	ge := &GateError{Sample: s, InARow: 2}
	if got := ge.Error(); !strings.HasPrefix(got, "gate latency failed 2 samples in a row: response_time 250ms") {
		t.Errorf("Error() = %q", got)
	}
}

func TestPrometheusGate(t *testing.T) {
	var mu sync.Mutex
	var lastQuery string
	answer := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		lastQuery = r.URL.Query().Get("query")
		a := answer
		mu.Unlock()
		fmt.Fprint(w, a)
	}))
	defer srv.Close()
	cond, err := ParseCondition("result < 1%", Result)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewPrometheusGate("errors", `sum(rate(app_errors_total{host=~"{{.Hosts}}",version="{{.Version}}"}[30s]))`, cond, &Prometheus{URL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	target := Target{Hosts: []string{"web1", "web-2.example"}, Version: "v2"}
	vector := func(vals ...string) string {
		var series []string
		for _, v := range vals {
			series = append(series, fmt.Sprintf(`{"metric":{},"value":[1700000000.1,%q]}`, v))
		}
		return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(series, ",") + `]}}`
	}
	for _, tc := range []struct {
		name, answer string
		verdict      Verdict
		value        float64
		detail       string
	}{
		{name: "passes", answer: vector("0.002"), verdict: Pass, value: 0.002},
		{name: "fails", answer: vector("0.05"), verdict: Fail, value: 0.05},
		{name: "scalar", answer: `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"0.5"]}}`, verdict: Fail, value: 0.5},
		{name: "no series", answer: vector(), verdict: Inconclusive, detail: "no data for sum("},
		{name: "NaN", answer: vector("NaN"), verdict: Inconclusive, detail: "no data for"},
		{name: "several series", answer: vector("1", "2"), verdict: Inconclusive, detail: "returned 2 series; a gate needs one number"},
		{name: "a PromQL error", answer: `{"status":"error","errorType":"bad_data","error":"parse error at char 5"}`, verdict: Inconclusive, detail: "prometheus: bad_data: parse error at char 5"},
		{name: "not the API", answer: "<html>proxy error</html>", verdict: Inconclusive, detail: "not an API answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			answer = tc.answer
			mu.Unlock()
			s := g.Sample(t.Context(), target)
			if s.Verdict != tc.verdict || s.Verdict != Inconclusive && !near(s.Value, tc.value) || !strings.Contains(s.Detail, tc.detail) {
				t.Fatalf("sample = %+v, want %s %g %q", s, tc.verdict, tc.value, tc.detail)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if want := `sum(rate(app_errors_total{host=~"web1|web-2\\.example",version="v2"}[30s]))`; lastQuery != want {
		t.Errorf("query = %s\nwant    %s", lastQuery, want)
	}
}

func TestNewPrometheusGateRefuses(t *testing.T) {
	rel, _ := ParseCondition("error_rate <= baseline", ErrorRate)
	abs, _ := ParseCondition("result < 1", Result)
	for _, tc := range []struct {
		query string
		cond  Condition
		want  string
	}{
		{"up", rel, "compares with a number"},
		{"up{host=~\"{{.Hosts}\"}", abs, "query: template"},
		{"up{host=~\"{{.Host}}\"}", abs, "can use {{.Hosts}}, {{.Version}} and {{.Deployment}}"},
	} {
		if _, err := NewPrometheusGate("g", tc.query, tc.cond, &Prometheus{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.query, err, tc.want)
		}
	}
}
