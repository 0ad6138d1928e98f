package coordinator

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/plans"
)

// A submitted plan's variables come from the request, never from the
// coordinator's own environment (which holds its secrets).
func TestSubmittedPlanVariablesComeFromTheRequestOnly(t *testing.T) {
	dir := t.TempDir()
	art := filepath.Join(dir, "app.tar.gz")
	if err := os.WriteFile(art, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VERSION", "from-the-coordinator")
	const plan = "name: web\nversion: ${VERSION}\nhosts: [{name: web1, address: 10.0.0.1}]\n" +
		"release: {artifact: \"${ARTIFACT:-app.tar.gz}\", path: /srv/app, restart: /bin/true}\nhealth: {command: \"true\"}\n"
	for _, tc := range []struct {
		name    string
		req     api.SubmitRequest
		version string
		err     string
	}{
		{"no variables sent", api.SubmitRequest{}, "", "plan.yaml:2:10: version: variable VERSION is not set"},
		{"sent by the CLI", api.SubmitRequest{Vars: map[string]string{"VERSION": "2.0.1"}}, "2.0.1", ""},
		{"--set sent by the CLI", api.SubmitRequest{Set: map[string]string{"version": "3.0.0"}}, "3.0.0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := submitOptions(tc.req)
			opts.Artifact = func(string) (string, error) { return art, nil }
			p, err := plans.ParseWith("plan.yaml", []byte(plan), opts)
			if tc.err != "" {
				if !errors.Is(err, plans.ErrInvalid) || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("error = %v, want %s...", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Version != tc.version {
				t.Errorf("version = %q, want %q", p.Version, tc.version)
			}
		})
	}
}
