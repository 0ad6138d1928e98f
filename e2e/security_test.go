package e2e

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"net"
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

// freeLoopback is a free port on 127.0.0.1 (a drover server refuses :0).
func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDamagedRaftDBExitCode: the real binary, embedded (`drover status`)
// and as a coordinator (`drover server`), answers a damaged raft.db with
// exit code 4, the file's name and the way back, not a Go panic
// (security.md, finding 7).
func TestDamagedRaftDBExitCode(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "state")
	if code, _, stderr := runDrover(t, dir, "history", "--data-dir", data); code != 0 {
		t.Fatalf("history on a new data dir: exit %d\n%s", code, stderr)
	}
	db := filepath.Join(data, "raft.db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for off := 2 * 4096; off+32 <= len(b); off += 4096 {
		copy(b[off:], strings.Repeat("\xde\xad\xbe\xef", 8))
	}
	if err := os.WriteFile(db, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runDrover(t, dir, "tls", "init", "--dir", "tls"); code != 0 {
		t.Fatalf("tls init: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runDrover(t, dir, "tls", "issue", "server", "c1", "--ip", "127.0.0.1", "--dir", "tls"); code != 0 {
		t.Fatalf("tls issue: exit %d\n%s", code, stderr)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"embedded", []string{"status", "--data-dir", data}},
		{"server", []string{"server", "--node-id", "c1", "--data-dir", data, "--tls-dir", "tls",
			"--raft-addr", freeLoopback(t), "--http-addr", freeLoopback(t), "--bootstrap"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runDrover(t, dir, tc.args...)
			if code != 4 {
				t.Fatalf("exit %d, want 4\n%s", code, stderr)
			}
			for _, want := range []string{"raft.db is damaged", "drover cluster restore"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if strings.Contains(stderr, "goroutine") {
				t.Errorf("a Go panic:\n%s", stderr)
			}
		})
	}
}
