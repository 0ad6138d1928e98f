package e2e

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/orchestrator"
)

// addEntry copies the tar.gz at src to dst with one more header appended.
func addEntry(t *testing.T, src, dst string, extra tar.Header) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	gr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	gw := gzip.NewWriter(out)
	tw := tar.NewWriter(gw)
	tr := tar.NewReader(gr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&extra); err != nil {
		t.Fatal(err)
	}
	for _, c := range []io.Closer{tw, gw} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSymlinkedMarkerArchiveRefused: an artifact whose .drover-release is
// a symbolic link to a file outside the release is refused by the real
// binary before any host is touched, and the file it points at is left
// alone (security.md, finding 6).
func TestSymlinkedMarkerArchiveRefused(t *testing.T) {
	s := newSession(t, 2)
	if code, _ := s.run("deploy", s.plan("v1", false, "1")); code != 0 {
		t.Fatalf("deploy v1: exit %d", code)
	}
	victim := filepath.Join(s.lab.Dir, "victim")
	if err := os.WriteFile(victim, []byte("untouched\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := s.plan("v2", false, "1")
	evil := filepath.Join(s.lab.Dir, "artifacts", "evil-v2.tar.gz")
	addEntry(t, s.arts["v2-false"], evil, tar.Header{Name: ".drover-release", Typeflag: tar.TypeSymlink, Linkname: victim, Mode: 0o777})
	plan, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	plan = []byte(strings.ReplaceAll(string(plan), s.arts["v2-false"], evil))
	if err := os.WriteFile(path, plan, 0o644); err != nil {
		t.Fatal(err)
	}

	code, d := s.run("deploy", path)
	if code != 2 {
		t.Fatalf("exit %d, want 2 (bad input)\n%s", code, d.stderr.String())
	}
	if msg := d.stderr.String(); !strings.Contains(msg, evil) || !strings.Contains(msg, `".drover-release"`) {
		t.Errorf("the error should name the archive and the entry:\n%s", msg)
	}
	for _, ev := range d.stdout.all() {
		if ev.Kind == orchestrator.EventStage {
			t.Errorf("a stage ran: %+v", ev)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "untouched\n" {
		t.Errorf("%s = %q: written through the link", victim, b)
	}
	s.expectAllOn("v1")
}
