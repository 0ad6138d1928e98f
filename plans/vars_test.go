package plans

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// varPlan is a plan whose version and artifact lines (2 and 5) a case
// replaces; the shell commands use ${...} of their own.
func varPlan(version, artifact string) string {
	return "name: web\n" +
		"version: " + version + "\n" +
		"hosts: [{name: web1, address: 10.0.0.1}]\n" +
		"release:\n" +
		"  artifact: " + artifact + "\n" +
		"  path: /srv/app\n" +
		"  restart: systemctl restart app-${INSTANCE}\n" +
		"health: {command: \"test -n \\\"${HOME}\\\"\"}\n"
}

func TestPlanVariables(t *testing.T) {
	cases := []struct {
		name     string
		src      string
		env      map[string]string
		set      map[string]string
		files    map[string]string
		version  string // wanted on success
		artifact string // wanted on success, relative to the fixture
		vars     []Var  // wanted on success, File relative to the fixture
		want     string // wanted problems
	}{
		{
			name:    "no variables",
			src:     varPlan(`"1.0"`, "app.tar.gz"),
			version: "1.0", artifact: "app.tar.gz",
		},
		{
			name:    "from the environment",
			src:     varPlan("${VERSION}", "app.tar.gz"),
			env:     map[string]string{"VERSION": "2.0.1"},
			version: "2.0.1", artifact: "app.tar.gz",
			vars: []Var{{Key: "version", Name: "VERSION", Value: "2.0.1", From: FromEnv, File: "plan.yaml", Line: 2, Col: 10}},
		},
		{
			name:    "two variables in a quoted value, and the artifact",
			src:     varPlan(`"${MAJOR}.${MINOR}"`, "dist/app-${MAJOR}.${MINOR}.tar.gz"),
			env:     map[string]string{"MAJOR": "2", "MINOR": "5"},
			files:   map[string]string{"dist/app-2.5.tar.gz": "x"},
			version: "2.5", artifact: "dist/app-2.5.tar.gz",
			vars: []Var{
				{Key: "version", Name: "MAJOR", Value: "2", From: FromEnv, File: "plan.yaml", Line: 2, Col: 11},
				{Key: "version", Name: "MINOR", Value: "5", From: FromEnv, File: "plan.yaml", Line: 2, Col: 20},
				{Key: "release.artifact", Name: "MAJOR", Value: "2", From: FromEnv, File: "plan.yaml", Line: 5, Col: 22},
				{Key: "release.artifact", Name: "MINOR", Value: "5", From: FromEnv, File: "plan.yaml", Line: 5, Col: 31},
			},
		},
		{
			name: "unset",
			src:  varPlan("${VERSION}", "app.tar.gz"),
			want: "plan.yaml:2:10: version: variable VERSION is not set; set it in the environment, use --set version=VALUE, or give a default: ${VERSION:-VALUE}",
		},
		{
			name: "empty",
			src:  varPlan("${VERSION}", "app.tar.gz"),
			env:  map[string]string{"VERSION": ""},
			want: "plan.yaml:2:10: version: variable VERSION is empty; set it, use --set version=VALUE, or give a default: ${VERSION:-VALUE}",
		},
		{
			name:    "default when unset",
			src:     varPlan("${VERSION:-1.0.0}", "app.tar.gz"),
			version: "1.0.0", artifact: "app.tar.gz",
			vars: []Var{{Key: "version", Name: "VERSION", Value: "1.0.0", From: FromDefault, File: "plan.yaml", Line: 2, Col: 10}},
		},
		{
			name:    "default when empty",
			src:     varPlan("${VERSION:-1.0.0}", "app.tar.gz"),
			env:     map[string]string{"VERSION": ""},
			version: "1.0.0", artifact: "app.tar.gz",
			vars: []Var{{Key: "version", Name: "VERSION", Value: "1.0.0", From: FromDefault, File: "plan.yaml", Line: 2, Col: 10}},
		},
		{
			name:    "the environment over the default",
			src:     varPlan("${VERSION:-1.0.0}", "app.tar.gz"),
			env:     map[string]string{"VERSION": "1.1.0"},
			version: "1.1.0", artifact: "app.tar.gz",
			vars: []Var{{Key: "version", Name: "VERSION", Value: "1.1.0", From: FromEnv, File: "plan.yaml", Line: 2, Col: 10}},
		},
		{
			name:    "--set over the environment",
			src:     varPlan("${VERSION}", "app.tar.gz"),
			env:     map[string]string{"VERSION": "2.0.1"},
			set:     map[string]string{"version": "3.0.0"},
			version: "3.0.0", artifact: "app.tar.gz",
			vars: []Var{{Key: "version", Value: "3.0.0", From: FromSet, File: "plan.yaml", Line: 2, Col: 10}},
		},
		{
			name:    "--set over an unset variable",
			src:     varPlan("${VERSION}", "app.tar.gz"),
			set:     map[string]string{"version": "3.0.0"},
			version: "3.0.0", artifact: "app.tar.gz",
			vars: []Var{{Key: "version", Value: "3.0.0", From: FromSet, File: "plan.yaml", Line: 2, Col: 10}},
		},
		{
			name:    "--set where the file has no version",
			src:     strings.Replace(varPlan("x", "app.tar.gz"), "version: x\n", "", 1),
			set:     map[string]string{"version": "3.0.0"},
			version: "3.0.0", artifact: "app.tar.gz",
			vars: []Var{{Key: "version", Value: "3.0.0", From: FromSet}},
		},
		{
			name:    "--set over a value of the wrong type",
			src:     varPlan("2.10", "app.tar.gz"),
			set:     map[string]string{"version": "2.10"},
			version: "2.10", artifact: "app.tar.gz",
			vars: []Var{{Key: "version", Value: "2.10", From: FromSet, File: "plan.yaml", Line: 2, Col: 10}},
		},
		{
			name: "a bad --set version",
			src:  varPlan(`"1.0"`, "app.tar.gz"),
			set:  map[string]string{"version": "1 0"},
			want: `--set: version: must be a safe directory name ` + safeRule + `, got "1 0"`,
		},
		{
			name: "an empty --set artifact",
			src:  varPlan(`"1.0"`, "app.tar.gz"),
			set:  map[string]string{"release.artifact": ""},
			want: `--set: release.artifact: must not be empty`,
		},
		{
			name: "--set of a key that takes none",
			src:  varPlan(`"1.0"`, "app.tar.gz"),
			set:  map[string]string{"name": "api"},
			want: `--set: name cannot be set from the command line; --set takes version or release.artifact`,
		},
		{
			name: "bad names",
			src:  varPlan(`"${1X}-${A-B}"`, "app-${}.tar.gz"),
			want: lines(
				"plan.yaml:2:11: version: ${1X}: a variable name is letters, digits and _, not starting with a digit (want ${NAME} or ${NAME:-default})",
				"plan.yaml:2:17: version: ${A-B}: a variable name is letters, digits and _, not starting with a digit (want ${NAME} or ${NAME:-default})",
				"plan.yaml:5:17: release.artifact: ${}: a variable name is letters, digits and _, not starting with a digit (want ${NAME} or ${NAME:-default})",
			),
		},
		{
			name: "unterminated",
			src:  varPlan(`"1.0"`, "app-${VERSION.tar.gz"),
			want: "plan.yaml:5:17: release.artifact: unterminated ${ (want ${NAME} or ${NAME:-default})",
		},
		{
			name: "a variable in a default",
			src:  varPlan("${A:-${B}}", "app.tar.gz"),
			want: "plan.yaml:2:10: version: ${A:-${B}: a default cannot contain another variable",
		},
		{
			name: "the second of two unset, in single quotes",
			src:  varPlan(`'v${A}-${B}'`, "app.tar.gz"),
			env:  map[string]string{"A": "1"},
			want: "plan.yaml:2:17: version: variable B is not set; set it in the environment, use --set version=VALUE, or give a default: ${B:-VALUE}",
		},
		{
			name: "in a folded block",
			src:  varPlan(">-\n  ${VERSION}", "app.tar.gz"),
			want: "plan.yaml:3:3: version: variable VERSION is not set; set it in the environment, use --set version=VALUE, or give a default: ${VERSION:-VALUE}",
		},
		{
			name: "after a multi-byte character",
			src:  varPlan(`"1.0"`, "\"é/${ART}\""),
			want: "plan.yaml:5:16: release.artifact: variable ART is not set; set it in the environment, use --set release.artifact=VALUE, or give a default: ${ART:-VALUE}",
		},
		{
			name: "unquoted inside { }",
			src:  varPlan(`"1.0"`, "app.tar.gz") + "x: {a: ${B}}\n",
			want: `plan.yaml:9:9: invalid YAML: ',' or '}' must be specified; inside [ ] or { }, quote a value that uses a variable: "${NAME}"`,
		},
		{
			name:    "$${ is a literal ${",
			src:     varPlan(`"1.0"`, `"app-$${X}.tar.gz"`),
			files:   map[string]string{"app-${X}.tar.gz": "x"},
			version: "1.0", artifact: "app-${X}.tar.gz",
		},
		{
			name: "in a key that takes no variables",
			src:  strings.Replace(varPlan(`"1.0"`, "app.tar.gz"), "/srv/app", "/srv/${APP}", 1),
			env:  map[string]string{"APP": "web"},
			want: "plan.yaml:6:14: release.path: ${...} variables are expanded only in version or release.artifact (write $${ for a literal ${)",
		},
		{
			name: "in a host's address",
			src:  strings.Replace(varPlan(`"1.0"`, "app.tar.gz"), "10.0.0.1", `"${WEB1}"`, 1),
			want: "plan.yaml:3:32: hosts[0].address: ${...} variables are expanded only in version or release.artifact (write $${ for a literal ${)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.files)
			env := func(name string) (string, bool) {
				v, ok := tc.env[name]
				return v, ok
			}
			p, err := ParseWith(filepath.Join(f.dir, "plan.yaml"), []byte(tc.src), Options{Env: env, Set: tc.set}, Files{})
			if got := f.problems(t, err); got != tc.want {
				t.Fatalf("problems:\n%s\nwant:\n%s", got, tc.want)
			}
			if tc.want != "" {
				return
			}
			if p.Version != tc.version {
				t.Errorf("version = %q, want %q", p.Version, tc.version)
			}
			if want := filepath.Join(f.dir, tc.artifact); p.Release.Artifact != want {
				t.Errorf("artifact = %q, want %q", p.Release.Artifact, want)
			}
			if p.Release.Restart != "systemctl restart app-${INSTANCE}" || p.Health.Command != `test -n "${HOME}"` {
				t.Errorf("shell commands changed: restart %q, health %q", p.Release.Restart, p.Health.Command)
			}
			for i := range p.Vars {
				p.Vars[i].File = strings.TrimPrefix(p.Vars[i].File, f.dir+string(filepath.Separator))
			}
			if !slices.Equal(p.Vars, tc.vars) {
				t.Errorf("vars:\n%+v\nwant\n%+v", p.Vars, tc.vars)
			}
		})
	}
}

// A relative release.artifact given with --set is relative to the working
// directory, as anything typed on a command line; in the file it is
// relative to the plan.
func TestSetArtifactIsRelativeToTheWorkingDirectory(t *testing.T) {
	f := newFixture(t, map[string]string{"build/app-9.tar.gz": "x"})
	t.Chdir(filepath.Join(f.dir, "build"))
	p, err := ParseWith(filepath.Join(f.dir, "plan.yaml"), []byte(varPlan(`"9"`, "app.tar.gz")),
		Options{Set: map[string]string{"release.artifact": "app-9.tar.gz"}}, Files{})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(f.dir, "build", "app-9.tar.gz"); p.Release.Artifact != want {
		t.Errorf("artifact = %q, want %q", p.Release.Artifact, want)
	}
	_, err = ParseWith(filepath.Join(f.dir, "plan.yaml"), []byte(varPlan(`"9"`, "app.tar.gz")),
		Options{Set: map[string]string{"release.artifact": "missing.tar.gz"}}, Files{})
	if got, want := f.problems(t, err), "--set: release.artifact: file $DIR/build/missing.tar.gz does not exist"; got != want {
		t.Errorf("problems:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseSet(t *testing.T) {
	for _, tc := range []struct {
		arg, key, value, err string
	}{
		{arg: "version=2.0.1", key: "version", value: "2.0.1"},
		{arg: "release.artifact=dist/app=1.tar.gz", key: "release.artifact", value: "dist/app=1.tar.gz"},
		{arg: "version", err: "--set version: want KEY=VALUE, like version=2.0.1"},
		{arg: "release.path=/srv", err: `--set release.path=/srv: "release.path" cannot be set from the command line; --set takes version or release.artifact`},
	} {
		key, value, err := ParseSet(tc.arg)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseSet(%q) error = %v, want %s", tc.arg, err, tc.err)
			}
			continue
		}
		if err != nil || key != tc.key || value != tc.value {
			t.Errorf("ParseSet(%q) = %q, %q, %v; want %q, %q", tc.arg, key, value, err, tc.key, tc.value)
		}
	}
}
