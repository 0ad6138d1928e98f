package plans

import (
	"path/filepath"
	"slices"
	"testing"
)

// secrets: names variables, each checked where it is written.
func TestSecretsKey(t *testing.T) {
	f := newFixture(t, map[string]string{"app.tar.gz": "x"})
	tests := []struct {
		name string
		src  string
		want []string // the names, or
		err  string   // the problems
	}{
		{"names", "secrets: [API_TOKEN, db_pass]\n", []string{"API_TOKEN", "db_pass"}, ""},
		{"absent", "", nil, ""},
		{"not a name", "secrets: [API_TOKEN, \"X=1\"]\n", nil, `plan.yaml:6:22: secrets[1]: must be a variable name (letters, digits and _, not starting with a digit), got "X=1"`},
		{"twice", "secrets:\n  - A\n  - a\n", nil, `plan.yaml:8:5: secrets[1]: "a" is listed twice`},
		{"not a list", "secrets: API_TOKEN\n", nil, `plan.yaml:6:10: secrets: must be a list of variable names, like [API_TOKEN], got "API_TOKEN"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(filepath.Join(f.dir, "plan.yaml"), []byte(base+tc.src))
			if got := f.problems(t, err); got != tc.err {
				t.Fatalf("problems:\n%s\nwant\n%s", got, tc.err)
			}
			if err == nil && !slices.Equal(p.Secrets, tc.want) {
				t.Fatalf("secrets = %q, want %q", p.Secrets, tc.want)
			}
		})
	}
}
