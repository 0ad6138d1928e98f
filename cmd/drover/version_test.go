package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolveBuild(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-11-01T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	tagged := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v1.4.0"}}
	for _, tc := range []struct {
		name           string
		ver, rev, date string
		bi             *debug.BuildInfo
		want           buildInfo
	}{
		{"set by the build", "1.2.0", "abcdef012345", "2026-11-29T18:00:00Z", stamped,
			buildInfo{Version: "1.2.0", Commit: "abcdef012345", BuildDate: "2026-11-29T18:00:00Z", GoVersion: "go1.99.1"}},
		{"dirty build", "1.2.0", "abcdef012345-dirty", "2026-11-29T18:00:00Z", nil,
			buildInfo{Version: "1.2.0", Commit: "abcdef012345", Modified: true, BuildDate: "2026-11-29T18:00:00Z", GoVersion: runtime.Version()}},
		{"toolchain stamp", "", "", "", stamped,
			buildInfo{Version: "dev", Commit: "0123456789abcdef0123456789abcdef01234567", Modified: true, CommitDate: "2026-11-01T10:00:00Z", GoVersion: "go1.99.1"}},
		{"go install of a tag", "", "", "", tagged, buildInfo{Version: "v1.4.0", GoVersion: "go1.99.1"}},
		{"nothing known", "", "", "", nil, buildInfo{Version: "dev", GoVersion: runtime.Version()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.Platform = runtime.GOOS + "/" + runtime.GOARCH
			if got := resolveBuild(tc.ver, tc.rev, tc.date, tc.bi); got != tc.want {
				t.Errorf("resolveBuild = %+v\nwant            %+v", got, tc.want)
			}
		})
	}
}

// runRoot runs drover's root command with args and returns its output.
func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestVersionCommand(t *testing.T) {
	b := build()
	text, err := runRoot(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"drover " + b.Version + "\n", "  go:         " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(text, want) {
			t.Errorf("drover version lacks %q:\n%s", want, text)
		}
	}
	js, err := runRoot(t, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got buildInfo
	if err := json.Unmarshal([]byte(js), &got); err != nil {
		t.Fatalf("drover version -o json: %v\n%s", err, js)
	}
	if got != b {
		t.Errorf("drover version -o json = %+v, want %+v", got, b)
	}
	line, err := runRoot(t, "--version")
	if err != nil {
		t.Fatal(err)
	}
	if line != b.line()+"\n" || !strings.HasPrefix(line, "drover "+b.Version+" (") {
		t.Errorf("drover --version = %q, want %q", line, b.line()+"\n")
	}
	if _, err := runRoot(t, "version", "-o", "yaml"); err == nil {
		t.Error("drover version -o yaml: no error")
	}
}

// TestBuiltBinaryReportsLdflags builds drover the way the Makefile does and
// checks that the binary reports what -ldflags set, in every form.
func TestBuiltBinaryReportsLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the drover binary; skipped with -short")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	bin := filepath.Join(t.TempDir(), "drover")
	const ld = "-X main.version=9.8.7-test -X main.commit=feedfacecafe-dirty -X main.buildDate=2026-01-02T03:04:05Z"
	build := exec.Command(gobin, "build", "-ldflags", ld, "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(args ...string) string {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("drover %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	want := "drover 9.8.7-test (commit feedfacecafe (modified), built 2026-01-02T03:04:05Z, " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if got := run("--version"); got != want {
		t.Errorf("drover --version = %q\nwant               %q", got, want)
	}
	var got buildInfo
	if err := json.Unmarshal([]byte(run("version", "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != "9.8.7-test" || got.Commit != "feedfacecafe" || !got.Modified || got.BuildDate != "2026-01-02T03:04:05Z" {
		t.Errorf("drover version -o json = %+v", got)
	}
}
