// Package tail keeps the end of a command's output: the last lines usually
// say why it failed, and a chatty command must not fill memory.
package tail

import (
	"strings"
	"sync"
)

// Buffer keeps the last Max bytes written to it. It is safe for concurrent
// writes: a transport may copy stdout and stderr from two goroutines.
type Buffer struct {
	max       int
	mu        sync.Mutex
	buf       []byte
	truncated bool
}

// New returns a buffer that keeps the last max bytes.
func New(max int) *Buffer { return &Buffer{max: max} }

// Write keeps the tail of everything written; it never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		b.truncated = true
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.truncated = true
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

// String is the kept output, trimmed, with "..." in front when the start
// was dropped.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSpace(string(b.buf))
	if b.truncated && s != "" {
		return "..." + s
	}
	return s
}
