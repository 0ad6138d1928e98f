package notify

import (
	"testing"
	"time"
)

func TestSignal(t *testing.T) {
	var s Signal
	c := s.C()
	select {
	case <-c:
		t.Fatal("closed before any Fire")
	default:
	}
	s.Fire()
	select {
	case <-c:
	case <-time.After(time.Second):
		t.Fatal("Fire did not wake the waiter")
	}
	if s.C() == c {
		t.Fatal("a fired channel was handed out again")
	}
}
