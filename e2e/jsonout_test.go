package e2e

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemas compiles docs/json/*.schema.json once: the CLI's -o json output
// on a real cluster is checked against what docs/json.md documents.
var schemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	files, err := filepath.Glob(filepath.Join("..", "docs", "json", "*.schema.json"))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	out := map[string]*jsonschema.Schema{}
	for _, f := range files {
		s, err := c.Compile(f)
		if err != nil {
			return nil, err
		}
		out[filepath.Base(f)] = s
	}
	return out, nil
})

// checkJSON fails t unless raw (one document, or an array of them when
// list) matches docs/json/NAME.schema.json.
func checkJSON(t testing.TB, name string, raw []byte, list bool) {
	t.Helper()
	all, err := schemas()
	if err != nil {
		t.Fatal(err)
	}
	s := all[name+".schema.json"]
	if s == nil {
		t.Fatalf("no docs/json/%s.schema.json", name)
	}
	docs := []json.RawMessage{raw}
	if list {
		if err := json.Unmarshal(raw, &docs); err != nil {
			t.Fatalf("not a JSON array: %v\n%s", err, raw)
		}
	}
	for _, d := range docs {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(d))
		if err != nil {
			t.Fatalf("not JSON: %v\n%s", err, d)
		}
		if err := s.Validate(v); err != nil {
			t.Errorf("%s\ndoes not match docs/json/%s.schema.json: %v", d, name, err)
		}
	}
}

// newToken runs a `token create` command (args) with -o json and returns
// the token, its output checked against the schema.
func (c *cluster) newToken(args ...string) string {
	c.t.Helper()
	out := c.cli(0, args...)
	checkJSON(c.t, "new-token", []byte(out), false)
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Token == "" {
		c.t.Fatalf("drover %v: no token in %q (%v)", args, out, err)
	}
	return tok.Token
}
