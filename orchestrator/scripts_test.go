package orchestrator

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// runScript runs a stage script with sh, as a host's login shell would.
func runScript(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("script failed: %v\n%s\n---\n%s", err, out, script)
	}
	return string(out)
}

// TestStageScripts runs the install, activate and prune scripts on a
// release path in a temp dir, with a name that needs quoting.
func TestStageScripts(t *testing.T) {
	base := filepath.Join(t.TempDir(), "my app")
	releases := filepath.Join(base, "releases")
	if err := os.MkdirAll(releases, 0o755); err != nil {
		t.Fatal(err)
	}

	// preflight on an empty path: no current, some free space.
	out := runScript(t, preflightScript(base))
	if !strings.Contains(out, "current=\n") || !strings.Contains(out, "free=") {
		t.Errorf("preflight printed %q", out)
	}

	// install: checked, unpacked without its top folder, marked.
	archive, sum := tarball(t, map[string]string{"app-2/bin/restart": "#!/bin/sh\necho restarted $DROVER_VERSION\n"})
	staging := filepath.Join(base, ".upload")
	if err := os.WriteFile(staging, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(releases, "2.0")
	marker := filepath.Join(dir, ".drover-release")
	if out := runScript(t, releasePresentScript(marker)); out != "absent\n" {
		t.Errorf("before install: %q", out)
	}
	runScript(t, unpackScript(sum, staging, filepath.Join(releases, ".2.0.tmp"), dir, 1))
	if out := runScript(t, releasePresentScript(marker)); out != "present\n" {
		t.Errorf("after install: %q", out)
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Errorf("the upload is still there: %v", err)
	}

	// activate: current points at the release, the restart runs from it.
	link := filepath.Join(base, "current")
	out = runScript(t, activateScript("2.0", filepath.Join(base, ".current.drover-tmp"), link, "DROVER_VERSION=2.0 sh bin/restart"))
	if out != "restarted 2.0\n" {
		t.Errorf("restart printed %q", out)
	}
	if got, _ := os.Readlink(link); got != "releases/2.0" {
		t.Errorf("current -> %q", got)
	}

	// hook: from the release, with the variables set.
	out = runScript(t, hookScript(dir, base, "web 1", "2.0", "rollout", `echo "$DROVER_HOST $DROVER_PHASE $(basename "$PWD")"`))
	if out != "web 1 rollout 2.0\n" {
		t.Errorf("hook printed %q", out)
	}

	// prune: keeps the 2 newest, and current and previous whatever their age.
	for i, v := range []string{"0.1", "0.2", "0.3", "0.4", "0.5"} {
		mkRelease(t, releases, v, time.Now().Add(time.Duration(i-10)*time.Hour))
	}
	runScript(t, pruneScript(releases, "2.0", "0.1", 2))
	if got, want := ls(t, releases), []string{"0.1", "0.5", "2.0"}; !slices.Equal(got, want) {
		t.Errorf("after prune: %v, want %v", got, want)
	}
}

func mkRelease(t *testing.T, releases, v string, mtime time.Time) {
	t.Helper()
	d := filepath.Join(releases, v)
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(d, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func ls(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// tarball is a .tar.gz of files and its SHA-256.
func tarball(t *testing.T, files map[string]string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:])
}
