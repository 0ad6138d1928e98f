package plans

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, and that it returns either a
// usable plan or a well-formed list of problems. Variables named A... are
// set (to "1.0"), others are not.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		base,
		samplePlan,
		"",
		"name: web\n",
		"- a\n- b\n",
		"a: &x [*x]\n",
		"<<: *y\n",
		"hosts: &h [{<<: *h}]\n",
		head + "hosts: [{name: web1, address: \"[::1]:22\"}]\n" + tail,
		head + hostsLine + releaseLine + "health: {http: {url: \"http://{{.Host}}{{range 5}}x{{end}}\"}}\n",
		head + hostsLine + tail + "strategy: {batches: [1, \"50%\", 3]}\n---\nx: 1\n",
		"name: !!str 1\nversion: !!int 2\n",
		"{{",
		"? [a]\n: b\n",
		varPlan("${A}", "app${B:-.tar.gz}"),
		varPlan(`"é${A:-x}$${B}${"`, "'${A}${}'") + "x: {a: ${B}}\n",
	} {
		f.Add(seed)
	}
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.tar.gz"), []byte("artifact"), 0o644); err != nil {
		f.Fatal(err)
	}
	planPath := filepath.Join(dir, "plan.yaml")
	f.Fuzz(func(t *testing.T, src string) {
		p, err := ParseWith(planPath, []byte(src), Options{Env: func(name string) (string, bool) {
			return "1.0", strings.HasPrefix(name, "A")
		}}, Files{})
		if err != nil {
			if p != nil {
				t.Fatalf("both a plan and an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is not ErrInvalid: %v", err)
			}
			var list *Errors
			if !errors.As(err, &list) || len(*list) == 0 {
				t.Fatalf("error is not a non-empty *Errors: %v", err)
			}
			for _, e := range *list {
				if e.Line < 1 || e.Col < 1 || e.File == "" || e.Msg == "" {
					t.Fatalf("malformed problem %+v", e)
				}
			}
			if strings.Count(err.Error(), "\n") != len(*list)-1 {
				t.Fatalf("Error() is not one problem per line: %q", err.Error())
			}
			return
		}
		n := 0
		for _, b := range p.Batches() {
			if len(b) == 0 {
				t.Fatalf("empty batch")
			}
			n += len(b)
		}
		if n != len(p.Hosts) || n == 0 {
			t.Fatalf("batches cover %d of %d hosts", n, len(p.Hosts))
		}
		if mf := p.MaxFailures(); mf < 0 || mf > len(p.Hosts) {
			t.Fatalf("MaxFailures = %d", mf)
		}
		if err := p.Describe(&strings.Builder{}); err != nil {
			t.Fatalf("Describe: %v", err)
		}
	})
}
