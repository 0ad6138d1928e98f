// Package notify wakes every waiter of a condition at once: a channel that
// is closed and replaced each time something changes. Waiters take the
// channel, check their condition, then wait on it, so that no change
// between the check and the wait is missed.
package notify

import "sync"

// Signal is a broadcast to whoever waits at the moment it fires. The zero
// value is ready to use.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// C returns a channel closed at the next Fire.
func (s *Signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Fire wakes every waiter.
func (s *Signal) Fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
	}
	s.ch = make(chan struct{})
}
