package raftstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/deploy"
)

// damage overwrites raft.db in dir as how says.
func damage(t *testing.T, dir, how string) {
	t.Helper()
	p := filepath.Join(dir, "raft.db")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	switch how {
	case "pages": // every page after the two meta pages and the free list
		for off := 3 * 4096; off+32 <= len(b); off += 4096 {
			copy(b[off:], strings.Repeat("\xde\xad\xbe\xef", 8))
		}
	case "meta": // both meta pages
		for _, off := range []int{16, 4096 + 16} {
			copy(b[off:], strings.Repeat("\xff", 48))
		}
	case "truncated":
		b = b[:4096+100]
	case "cut":
		b = b[:len(b)/2]
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A damaged raft.db is an error naming the file, never a panic
// (security.md, finding 7).
func TestOpenDamagedRaftDB(t *testing.T) {
	for _, how := range []string{"pages", "meta", "truncated", "cut"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s, err := OpenSingle(ctx, Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range []string{"d1", "d2", "d3"} {
				if err := s.Apply(ctx, &deploy.CreateDeployment{Deployment: deployment(id, "v1", string(rune('a'+i))), At: t0}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			damage(t, dir, how)
			_, err = OpenSingle(ctx, Options{Dir: dir})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Join(dir, "raft.db")) {
				t.Fatalf("open: %v; want ErrCorrupt naming raft.db", err)
			}
		})
	}
}
