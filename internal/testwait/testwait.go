// Package testwait waits in tests for a condition that nothing announces
// (the state of another goroutine, process or node), instead of sleeping
// for a guessed time.
package testwait

import (
	"testing"
	"time"
)

// Limit is how long For waits: generous, as a loaded machine (shared CI,
// the race detector) is slow, and a condition that holds returns at once.
const Limit = 15 * time.Second

// interval is how often the condition is tried.
const interval = 10 * time.Millisecond

// For polls cond until it holds and fails t after Limit, naming what it
// waited for.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Limit, what, cond)
}

// Within polls cond until it holds and fails t after limit, naming what it
// waited for; show, when given, logs what was seen instead.
func Within(t testing.TB, limit time.Duration, what string, cond func() bool, show ...func() string) {
	t.Helper()
	if !held(limit, cond) {
		for _, f := range show {
			t.Log(f())
		}
		t.Fatalf("timed out after %v waiting for %s", limit, what)
	}
}

// held reports whether cond held within limit.
func held(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}
