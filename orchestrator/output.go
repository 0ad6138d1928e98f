package orchestrator

import (
	"strings"
	"sync"
)

// maxOutput bounds the command output the engine keeps: enough to see why a
// command failed, never enough to fill memory with a chatty restart script.
const maxOutput = 8 << 10

// tailBuffer keeps the last maxOutput bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	buf   []byte
	trunc bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - maxOutput; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.trunc = true
	}
	return n, nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimRight(string(t.buf), "\n")
	if t.trunc {
		s = "[...]\n" + s
	}
	return s
}

// shq quotes s for a POSIX shell.
func shq(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./+:=@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
