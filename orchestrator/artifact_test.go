package orchestrator

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeArchive writes a tar.gz of hdrs (regular files get a short body).
func writeArchive(t *testing.T, hdrs ...tar.Header) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range hdrs {
		var body []byte
		if h.Typeflag == tar.TypeReg {
			body = []byte("x")
			h.Size = 1
		}
		if h.Mode == 0 && h.Typeflag != tar.TypeXGlobalHeader {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "app.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The archive is judged before any host is touched: only what unpacking
// as root may safely create passes (security.md, finding 6).
func TestInspectArtifactRefusesUnsafeEntries(t *testing.T) {
	reg := func(name string) tar.Header { return tar.Header{Name: name, Typeflag: tar.TypeReg} }
	dir := func(name string) tar.Header { return tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755} }
	link := func(name, to string) tar.Header {
		return tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to, Mode: 0o777}
	}
	tests := []struct {
		name  string
		strip int
		hdrs  []tar.Header
		want  string // "" = accepted; else a substring of the error
	}{
		{"plain release", 0, []tar.Header{dir("bin/"), reg("bin/restart"), link("bin/run", "restart"), link("lib", "bin/../bin")}, ""},
		{"git archive global header", 0, []tar.Header{{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "abc"}}, reg("a")}, ""},
		{"stripped folder", 1, []tar.Header{dir("app-2/"), reg("app-2/bin"), link("app-2/sub/l", "../bin")}, ""},
		{"marker as a symlink", 0, []tar.Header{reg("a"), link(".drover-release", "/etc/passwd")}, `".drover-release" is named like drover's release marker`},
		{"marker as a file", 0, []tar.Header{reg("./.drover-release")}, "release marker"},
		{"marker below a stripped folder", 1, []tar.Header{reg("app/.drover-release")}, "release marker"},
		{"link to the marker", 0, []tar.Header{link("m", ".drover-release")}, "to the release marker"},
		{"absolute link", 0, []tar.Header{link("etc", "/etc")}, `"etc" is a symbolic link to an absolute path /etc`},
		{"link out", 0, []tar.Header{link("a/up", "../../x")}, "symbolic link out of the release"},
		{"link out once stripped", 1, []tar.Header{link("top/sub/up", "../../x")}, "symbolic link out of the release"},
		{"absolute name", 0, []tar.Header{reg("/etc/cron.d/x")}, "absolute name"},
		{"dot-dot name", 0, []tar.Header{reg("a/../../x")}, ".. element"},
		{"device", 0, []tar.Header{{Name: "dev/sda", Typeflag: tar.TypeBlock}}, `"dev/sda" is a device node`},
		{"char device", 0, []tar.Header{{Name: "null", Typeflag: tar.TypeChar}}, "device node"},
		{"fifo", 0, []tar.Header{{Name: "p", Typeflag: tar.TypeFifo}}, "is a fifo"},
		{"hard link", 0, []tar.Header{reg("a"), {Name: "b", Typeflag: tar.TypeLink, Linkname: "a"}}, "hard link"},
		{"setuid", 0, []tar.Header{{Name: "bin/su", Typeflag: tar.TypeReg, Mode: 0o4755}}, `"bin/su" has the setuid or setgid bit`},
		{"setgid dir", 0, []tar.Header{{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o2775}}, "setuid or setgid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeArchive(t, tc.hdrs...)
			a, err := InspectArtifact(p, tc.strip)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if a.SHA256 == "" {
					t.Fatal("no checksum")
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error with %q", tc.want)
			}
			if !errors.Is(err, ErrUnsafeArtifact) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), p+": ") {
				t.Fatalf("error = %v\nwant ErrUnsafeArtifact naming the file and %q", err, tc.want)
			}
		})
	}
}
