package yamlpos

import (
	"fmt"
	"strings"
	"testing"
)

// decode parses src and reads key k of its root mapping (allowed: a, b),
// returning the value's kind and position and every problem reported.
func decode(t *testing.T, src, k string) (Value, []string) {
	t.Helper()
	var problems []string
	report := func(p Pos, msg string) { problems = append(problems, fmt.Sprintf("%d:%d: %s", p.Line, p.Col, msg)) }
	body, d, ok := Parse(report, "f.yaml", []byte(src), "file")
	if !ok || body == nil {
		return Value{}, problems
	}
	root, ok := d.Value(body, "")
	if !ok {
		return Value{}, problems
	}
	m, ok := d.Mapping(root, "", "a", "b")
	if !ok {
		return Value{}, problems
	}
	v, _, _ := m.Get(k)
	return v, problems
}

func TestPositions(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		key      string
		wantKind Kind
		wantPos  string // line:col of the value
		problems string // joined by "; "
	}{
		{name: "scalar", src: "a: 1\nb: two\n", key: "b", wantKind: String, wantPos: "2:4"},
		{name: "alias resolves to the anchor's value", src: "a: &x [1, 2]\nb: *x\n", key: "b", wantKind: Seq, wantPos: "1:7"},
		{name: "merge key", src: "a: 1\n<<: {b: true}\n", key: "b", wantKind: Bool, wantPos: "2:9"},
		{name: "unknown key with a suggestion", src: "a: 1\nbb: 2\n", key: "a", wantKind: Int, wantPos: "1:4",
			problems: `2:1: bb: unknown key; did you mean "b"?`},
		{name: "duplicate key", src: "a: 1\na: 2\n", key: "a", wantKind: Int, wantPos: "1:4",
			problems: "2:1: a: duplicate key (first set at line 1)"},
		{name: "unknown alias", src: "a: *nope\n", key: "a", wantKind: Null, wantPos: "0:0",
			problems: "1:4: a: unknown alias *nope"},
		{name: "custom tag refused", src: "a: !secret x\n", key: "a", wantKind: Null, wantPos: "0:0",
			problems: "1:4: a: unsupported YAML tag !secret"},
		{name: "syntax error", src: "a: [1,\n", key: "a", wantKind: Null, wantPos: "0:0",
			problems: "invalid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, problems := decode(t, tt.src, tt.key)
			if got := fmt.Sprintf("%d:%d", v.P.Line, v.P.Col); v.K != tt.wantKind || got != tt.wantPos {
				t.Errorf("value %v at %s, want kind %v at %s", v, got, tt.wantKind, tt.wantPos)
			}
			if got := strings.Join(problems, "; "); !strings.Contains(got, tt.problems) || (tt.problems == "") != (got == "") {
				t.Errorf("problems %q, want %q", got, tt.problems)
			}
		})
	}
}
