package agent

import (
	"testing"
	"time"
)

// Each source IP has its own bucket of failed attempts, whatever its
// port; a spent bucket is refused until time refills it, successes cost
// nothing, and idle sources are forgotten.
func TestSourceLimiter(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	l := newSourceLimiter(1, 3)
	steps := []struct {
		remote string
		at     time.Duration
		fail   bool // the attempt failed
		want   bool // admitted
	}{
		{"10.0.0.1:1000", 0, false, true}, // successes are free
		{"10.0.0.1:1000", 0, false, true},
		{"10.0.0.1:1000", 0, false, true},
		{"10.0.0.1:1000", 0, false, true},
		{"10.0.0.1:1000", 0, true, true},
		{"10.0.0.1:1001", 0, true, true},
		{"10.0.0.1:1002", 0, true, true},
		{"10.0.0.1:1003", 0, false, false}, // three failures spent it, new port or not
		{"10.0.0.2:1000", 0, true, true},   // another source
		{"[::1]:80", 0, true, true},
		{"10.0.0.1:1004", time.Second, true, true}, // one refilled
		{"10.0.0.1:1005", time.Second, false, false},
	}
	for i, s := range steps {
		now := t0.Add(s.at)
		if got := l.admits(s.remote, now); got != s.want {
			t.Fatalf("step %d (%s at +%v): admits %v, want %v", i, s.remote, s.at, got, s.want)
		}
		if s.want && s.fail {
			l.failed(s.remote, now)
		}
	}
	l.admits("10.0.0.3:1", t0.Add(2*limiterIdle))
	if n := len(l.per); n != 1 {
		t.Fatalf("%d sources remembered after they were idle, want 1", n)
	}
}
