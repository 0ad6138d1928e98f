package testwait

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is a testing.TB that keeps what a failing wait reports.
type recorder struct {
	testing.TB
	logs   []string
	failed string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Log(args ...any)                { r.logs = append(r.logs, fmt.Sprint(args...)) }
func (r *recorder) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }

func TestWithin(t *testing.T) {
	tests := []struct {
		name     string
		trueAt   time.Duration // the condition holds from then on; <0 = never
		limit    time.Duration
		wantFail bool
		wantTook time.Duration
	}{
		{name: "already true", trueAt: 0, limit: time.Second, wantTook: 0},
		{name: "true later", trueAt: 95 * time.Millisecond, limit: time.Second, wantTook: 100 * time.Millisecond},
		{name: "never", trueAt: -1, limit: time.Second, wantFail: true, wantTook: time.Second + interval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				r := &recorder{TB: t}
				Within(r, tt.limit, "the thing", func() bool {
					return tt.trueAt >= 0 && time.Since(start) >= tt.trueAt
				}, func() string { return "saw: nothing" })
				if took := time.Since(start); took != tt.wantTook {
					t.Errorf("returned after %v, want %v", took, tt.wantTook)
				}
				if tt.wantFail {
					if !strings.Contains(r.failed, "waiting for the thing") || len(r.logs) != 1 || r.logs[0] != "saw: nothing" {
						t.Errorf("failure %q, logs %q; want it to name the thing and show what was seen", r.failed, r.logs)
					}
				} else if r.failed != "" || len(r.logs) != 0 {
					t.Errorf("failed with %q, logs %q; want no failure", r.failed, r.logs)
				}
			})
		})
	}
}
