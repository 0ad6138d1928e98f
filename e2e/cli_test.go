package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// These need no lab: they check what an operator sees on bad input.

func runDrover(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(droverBin, args...)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}

func TestCLIBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := "name: web\nversion: \"1/2\"\nhosts: []\nstrategy:\n  batch: 0\n  colour: blue\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		stderrRe string
	}{
		{"validate reports every problem with its position", []string{"plan", "validate", "bad.yaml"}, 2,
			`(?m)^bad\.yaml:2:10: version: .*\n(.*\n)*bad\.yaml:5:10: strategy\.batch: .*\n(.*\n)*bad\.yaml:6:3: strategy\.colour: unknown key`},
		{"deploy refuses an invalid plan", []string{"deploy", "bad.yaml", "--data-dir", "state"}, 2, `^bad\.yaml:\d+:\d+: `},
		{"deploy without a plan", []string{"deploy"}, 2, `needs PLAN`},
		{"missing plan file", []string{"plan", "show", "nope.yaml"}, 2, `nope\.yaml`},
		{"unknown flag", []string{"deploy", "bad.yaml", "--frobnicate"}, 2, `unknown flag`},
		{"bad output format", []string{"status", "--output", "xml", "--data-dir", "state"}, 2, `--output "xml"`},
		{"status of nothing", []string{"status", "--data-dir", "state"}, 2, `no matching deployment`},
		{"resume of an unknown id", []string{"resume", "web-nope", "--data-dir", "state"}, 2, `no such deployment`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runDrover(t, dir, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if !regexp.MustCompile(tt.stderrRe).MatchString(stderr) {
				t.Errorf("stderr does not match %q:\n%s", tt.stderrRe, stderr)
			}
			if strings.Contains(stderr, "panic") {
				t.Errorf("panic:\n%s", stderr)
			}
		})
	}
}
