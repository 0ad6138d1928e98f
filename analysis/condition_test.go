package analysis

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCondition(t *testing.T) {
	haproxy := []Metric{ErrorRate, ResponseTime}
	for _, tc := range []struct {
		in        string
		metrics   []Metric
		metric    Metric
		op        string
		value     float64
		baseline  bool
		scale     bool
		errCol    int
		errSubstr string
	}{
		{in: "error_rate < 1%", metrics: haproxy, metric: ErrorRate, op: "<", value: 0.01},
		{in: "error_rate<=0.02", metrics: haproxy, metric: ErrorRate, op: "<=", value: 0.02},
		{in: "response_time < 300ms", metrics: haproxy, metric: ResponseTime, op: "<", value: 0.3},
		{in: "  response_time <= baseline * 1.2 ", metrics: haproxy, metric: ResponseTime, op: "<=", value: 1.2, baseline: true, scale: true},
		{in: "error_rate <= baseline + 0.5%", metrics: haproxy, metric: ErrorRate, op: "<=", value: 0.005, baseline: true},
		{in: "error_rate <= baseline", metrics: haproxy, metric: ErrorRate, op: "<=", baseline: true},
		{in: "response_time <= baseline + 50ms", metrics: haproxy, metric: ResponseTime, op: "<=", value: 0.05, baseline: true},
		{in: "result > 0", metrics: []Metric{Result}, metric: Result, op: ">", value: 0},
		{in: "result < 300ms", metrics: []Metric{Result}, metric: Result, op: "<", value: 0.3},
		{in: "result >= 99.5%", metrics: []Metric{Result}, metric: Result, op: ">=", value: 0.995},

		{in: "", metrics: haproxy, errCol: 1, errSubstr: "want a metric name first (error_rate or response_time)"},
		{in: "errors < 1%", metrics: haproxy, errCol: 1, errSubstr: `unknown metric "errors"`},
		{in: "error_rate 1%", metrics: haproxy, errCol: 12, errSubstr: "want a comparison"},
		{in: "error_rate == 1%", metrics: haproxy, errCol: 12, errSubstr: `unknown comparison "=="`},
		{in: "error_rate <", metrics: haproxy, errCol: 13, errSubstr: "want a threshold or baseline"},
		{in: "error_rate < 300ms", metrics: haproxy, errCol: 14, errSubstr: "is a time; a rate is written like 1%"},
		{in: "response_time < 1%", metrics: haproxy, errCol: 17, errSubstr: "a time is written like 300ms"},
		{in: "response_time < 0.3", metrics: haproxy, errCol: 17, errSubstr: `"0.3" has no unit`},
		{in: "error_rate < lots", metrics: haproxy, errCol: 14, errSubstr: "is not a number"},
		{in: "error_rate < 1% please", metrics: haproxy, errCol: 17, errSubstr: `unexpected "please"`},
		{in: "response_time <= baseline / 2", metrics: haproxy, errCol: 27, errSubstr: "after baseline, want + or *"},
		{in: "response_time <= baseline * 0", metrics: haproxy, errCol: 29, errSubstr: "positive plain number"},
		{in: "response_time <= baseline * 20ms", metrics: haproxy, errCol: 29, errSubstr: "positive plain number"},
		{in: "error_rate <= baseline +", metrics: haproxy, errCol: 25, errSubstr: `want a number after "+"`},
		{in: "response_time < 1s", metrics: []Metric{ErrorRate}, errCol: 1, errSubstr: `unknown metric "response_time" (want error_rate)`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			c, err := ParseCondition(tc.in, tc.metrics...)
			if tc.errSubstr != "" {
				var se *SyntaxError
				if !errors.As(err, &se) || se.Col != tc.errCol || !strings.Contains(se.Msg, tc.errSubstr) {
					t.Fatalf("err = %v, want column %d: ...%s...", err, tc.errCol, tc.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Metric != tc.metric || c.Op != tc.op || !near(c.Value, tc.value) || c.Baseline != tc.baseline || c.Scale != tc.scale {
				t.Fatalf("got %+v", c)
			}
		})
	}
}

func TestConditionThresholdAndHolds(t *testing.T) {
	for _, tc := range []struct {
		cond            string
		value, baseline float64
		threshold       float64
		holds           bool
	}{
		{"error_rate < 1%", 0.005, 0, 0.01, true},
		{"error_rate < 1%", 0.01, 0, 0.01, false},
		{"error_rate <= 1%", 0.01, 0, 0.01, true},
		{"error_rate <= baseline + 0.5%", 0.012, 0.01, 0.015, true},
		{"error_rate <= baseline + 0.5%", 0.05, 0.01, 0.015, false},
		{"response_time <= baseline * 1.2", 0.110, 0.100, 0.120, true},
		{"response_time <= baseline * 1.2", 0.200, 0.100, 0.120, false},
		{"response_time > 10ms", 0.005, 0, 0.010, false},
		{"response_time >= 10ms", 0.010, 0, 0.010, true},
	} {
		c, err := ParseCondition(tc.cond, ErrorRate, ResponseTime)
		if err != nil {
			t.Fatal(err)
		}
		th := c.Threshold(tc.baseline)
		if !near(th, tc.threshold) || c.Holds(tc.value, th) != tc.holds {
			t.Errorf("%s with value %g, baseline %g: threshold %g holds %v; want %g %v",
				tc.cond, tc.value, tc.baseline, th, c.Holds(tc.value, th), tc.threshold, tc.holds)
		}
	}
}

func TestMetricFormat(t *testing.T) {
	for _, tc := range []struct {
		m    Metric
		v    float64
		want string
	}{
		{ErrorRate, 0.0125, "1.25%"},
		{ErrorRate, 0.05, "5%"},
		{ErrorRate, 0, "0%"},
		{ResponseTime, 0.3124, "312.4ms"},
		{Result, 0.05, "0.05"},
	} {
		if got := tc.m.Format(tc.v); got != tc.want {
			t.Errorf("%s.Format(%g) = %q, want %q", tc.m.Name, tc.v, got, tc.want)
		}
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-12 && d > -1e-12 }
