package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

// The error build fails its share of "/", spread out, and stays healthy;
// the metrics count both by version and code.
func TestErrorBuild(t *testing.T) {
	h := handler("v9", "web1", faults{errorRate: 0.05}, prometheus.NewRegistry())
	failed, run, longest := 0, 0, 0
	for range 200 {
		code, _ := get(t, h, "/")
		if code == http.StatusInternalServerError {
			failed++
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	if failed != 10 || longest != 1 {
		t.Errorf("%d of 200 failed (longest run %d), want 10 spread out", failed, longest)
	}
	if code, body := get(t, h, "/health"); code != 200 || body != "ok\n" {
		t.Errorf("/health = %d %q", code, body)
	}
	_, metrics := get(t, h, "/metrics")
	for _, want := range []string{
		`demoapp_http_requests_total{code="500",handler="/",version="v9"} 10`,
		`demoapp_http_requests_total{code="200",handler="/",version="v9"} 190`,
		`demoapp_http_requests_total{code="200",handler="/health",version="v9"} 1`,
		`demoapp_http_request_duration_seconds_count{handler="/",version="v9"} 200`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}
}

func TestSlowAndBrokenBuilds(t *testing.T) {
	slow := handler("v9", "web1", faults{slow: 30 * time.Millisecond}, prometheus.NewRegistry())
	start := time.Now()
	if code, body := get(t, slow, "/"); code != 200 || body != "v9 web1\n" || time.Since(start) < 30*time.Millisecond {
		t.Errorf("slow build: %d %q after %s", code, body, time.Since(start))
	}
	if code, _ := get(t, slow, "/health"); code != 200 {
		t.Errorf("slow build unhealthy: %d", code)
	}
	broken := handler("v9", "web1", faults{broken: true}, prometheus.NewRegistry())
	if code, _ := get(t, broken, "/health"); code != 500 {
		t.Errorf("broken build /health = %d, want 500", code)
	}
}

func TestLinkedFaults(t *testing.T) {
	defer func(b, e, s string) { broken, errorRate, slow = b, e, s }(broken, errorRate, slow)
	broken, errorRate, slow = "", "0.05", "150ms"
	if f, err := linkedFaults(); err != nil || f.errorRate != 0.05 || f.slow != 150*time.Millisecond || f.broken {
		t.Errorf("faults = %+v, %v", f, err)
	}
	for _, bad := range [][2]string{{"2", ""}, {"x", ""}, {"", "soon"}} {
		errorRate, slow = bad[0], bad[1]
		if _, err := linkedFaults(); err == nil {
			t.Errorf("errorRate %q slow %q accepted", bad[0], bad[1])
		}
	}
}
