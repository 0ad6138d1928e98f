package hub

import (
	"testing"
	"time"
)

// Each source IP has its own bucket, whatever its port; a full burst is
// refused until time refills it, and idle sources are forgotten.
func TestSourceLimiter(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	l := newSourceLimiter(1, 3)
	steps := []struct {
		remote string
		at     time.Duration
		want   bool
	}{
		{"10.0.0.1:1000", 0, true},
		{"10.0.0.1:1001", 0, true},
		{"10.0.0.1:1002", 0, true},
		{"10.0.0.1:1003", 0, false}, // burst spent, new port or not
		{"10.0.0.2:1000", 0, true},  // another source
		{"[::1]:80", 0, true},
		{"10.0.0.1:1004", time.Second, true}, // one refilled
		{"10.0.0.1:1005", time.Second, false},
	}
	for i, s := range steps {
		if got := l.allow(s.remote, t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d (%s at +%v): allow %v, want %v", i, s.remote, s.at, got, s.want)
		}
	}
	l.allow("10.0.0.3:1", t0.Add(2*limiterIdle))
	if n := len(l.per); n != 1 {
		t.Fatalf("%d sources remembered after they were idle, want 1", n)
	}
}
