package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/drover-dev/drover/plans"
)

func TestPlanCommandsTakeVariables(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"app-2.0.1.tar.gz": "x", "app-3.0.0.tar.gz": "x",
		"plan.yaml": "name: web\nversion: ${WEB_VERSION}\nhosts: [{name: web1, address: 10.0.0.1}]\n" +
			"release:\n  artifact: app-${WEB_VERSION}.tar.gz\n  path: /srv/app\n  restart: /bin/true\nhealth: {command: \"true\"}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plan := filepath.Join(dir, "plan.yaml")
	for _, tc := range []struct {
		name string
		env  string // WEB_VERSION, "" for unset
		args []string
		want []string // regexps
		code int
	}{
		{name: "unset", args: []string{"plan", "validate", plan}, code: exitUsage,
			want: []string{`^` + regexp.QuoteMeta(plan) + `:2:10: version: variable WEB_VERSION is not set; `}},
		{name: "from the environment", env: "2.0.1", args: []string{"plan", "validate", plan},
			want: []string{`: ok: web 2.0.1 to 1 hosts in 1 batches`}},
		{name: "--set over the environment", env: "2.0.1", args: []string{"plan", "show", plan, "--set", "version=3.0.0"},
			want: []string{
				`(?m)^values from outside the plan file:$`,
				`(?m)^  version +3\.0\.0  \(--set; replaces the value at .*plan\.yaml:2:10\)$`,
				`(?m)^  release\.artifact +\$\{WEB_VERSION\} = 2\.0\.1  \(environment; .*plan\.yaml:5:17\)$`,
				`(?m)^  version: +3\.0\.0$`,
				`(?m)^  artifact: +.*app-2\.0\.1\.tar\.gz `,
			}},
		{name: "--set of another key", env: "2.0.1", args: []string{"plan", "validate", plan, "--set", "name=api"}, code: exitUsage,
			want: []string{`--set name=api: "name" cannot be set from the command line; --set takes version or release.artifact`}},
		{name: "--set twice", args: []string{"plan", "validate", plan, "--set", "version=1", "--set", "version=2"}, code: exitUsage,
			want: []string{`--set version=2: version is set twice`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("WEB_VERSION", tc.env)
			} else {
				t.Setenv("WEB_VERSION", "")
				os.Unsetenv("WEB_VERSION")
			}
			out, err := runRoot(t, tc.args...)
			if got := exitCode(err); got != tc.code {
				t.Fatalf("exit code %d, want %d (err %v)\n%s", got, tc.code, err, out)
			}
			if err != nil {
				out += err.Error()
				if tc.name == "unset" && !errors.Is(err, plans.ErrInvalid) {
					t.Errorf("error is not a plan problem: %v", err)
				}
			}
			for _, re := range tc.want {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("output lacks %s:\n%s", re, out)
				}
			}
		})
	}
}

// A cluster deploy sends the variables read from this environment, and only
// those: defaults are in the plan's text, --set travels on its own.
func TestEnvVarsSentToTheCluster(t *testing.T) {
	p := &plans.Plan{Vars: []plans.Var{
		{Key: "version", Name: "WEB_VERSION", Value: "2.0.1", From: plans.FromEnv},
		{Key: "release.artifact", Name: "WEB_VERSION", Value: "2.0.1", From: plans.FromEnv},
		{Key: "release.artifact", Name: "DIST", Value: "dist", From: plans.FromDefault},
		{Key: "version", Value: "3.0.0", From: plans.FromSet},
	}}
	got := envVars(p)
	if len(got) != 1 || got["WEB_VERSION"] != "2.0.1" {
		t.Errorf("envVars = %v, want map[WEB_VERSION:2.0.1]", got)
	}
	if got := envVars(&plans.Plan{}); got != nil {
		t.Errorf("envVars of a plan without variables = %v, want nil", got)
	}
}
