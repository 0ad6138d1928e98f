package plans

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture is a folder holding an artifact, a key and optional extra files,
// with the environment pinned so that defaults are predictable.
type fixture struct {
	dir string
}

func newFixture(t *testing.T, files map[string]string) fixture {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", filepath.Join(dir, "home"))
	t.Setenv("USER", "deployer")
	write := map[string]string{
		"app.tar.gz":     "not really a tarball, but not empty",
		"keys/id_deploy": "-----BEGIN OPENSSH PRIVATE KEY-----\n",
	}
	for name, body := range files {
		write[name] = body
	}
	for name, body := range write {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fixture{dir: dir}
}

// parse parses src as dir/plan.yaml.
func (f fixture) parse(src string) (*Plan, error) {
	return Parse(filepath.Join(f.dir, "plan.yaml"), []byte(src))
}

// problems renders err with the fixture's folder shortened to $DIR, so that
// expectations read like "plan.yaml:3:5: ...".
func (f fixture) problems(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
	}
	var list *Errors
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, want *Errors: %v", err, err)
	}
	ls := strings.Split(err.Error(), "\n")
	for i, l := range ls {
		l = strings.TrimPrefix(l, f.dir+string(filepath.Separator))
		ls[i] = strings.ReplaceAll(l, f.dir, "$DIR")
	}
	return strings.Join(ls, "\n")
}

// lines builds an expected multi-line message.
func lines(ls ...string) string { return strings.Join(ls, "\n") }
