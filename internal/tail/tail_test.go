package tail

import (
	"strings"
	"sync"
	"testing"
)

func TestConcurrentWrites(t *testing.T) {
	const max = 4 << 10
	b := New(max)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				b.Write([]byte("0123456789"))
			}
		})
	}
	wg.Wait()
	if s := b.String(); len(s) != max+3 || !strings.HasPrefix(s, "...") {
		t.Fatalf("len = %d", len(s))
	}
}

func TestShortOutputIsKeptWhole(t *testing.T) {
	b := New(16)
	b.Write([]byte("ok\n"))
	if s := b.String(); s != "ok" {
		t.Fatalf("String() = %q", s)
	}
}
