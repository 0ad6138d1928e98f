// Package yamlpos decodes YAML with every value's position: goccy/go-yaml's
// AST is walked (anchors, aliases, merge keys and standard tags resolved)
// instead of unmarshalled into structs, so that a decoder built on it
// reports every problem, not just the first, at the line and column it
// comes from. The plan decoder (package plans) is built on it.
package yamlpos

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Pos is a position in a file, 1-based. Line 0 is a value from outside any
// file (a command-line override).
type Pos struct {
	File      string
	Line, Col int
}

// Reporter receives each problem found, with where it is.
type Reporter func(p Pos, msg string)

// StringHook rewrites the strings a Mapping decodes (Str, NonEmpty): the
// plan decoder expands ${NAME} variables and applies --set with it.
type StringHook interface {
	// Overrides reports whether the value at path is replaced, whatever
	// the file holds (present or not, valid or not).
	Overrides(path string) bool
	// Resolve returns the final value at path: s as decoded at p (when
	// present), or its replacement. Problems go to d.Errorf.
	Resolve(d *Doc, path, s string, p Pos, present bool) (string, Pos, bool)
}

// Doc is one parsed YAML file.
type Doc struct {
	report  Reporter
	file    string
	anchors map[string]ast.Node
	lines   []string   // the source, to place errors inside a scalar
	Hook    StringHook // nil: strings are taken as written
}

// Errorf reports a problem at p.
func (d *Doc) Errorf(p Pos, format string, args ...any) {
	d.report(p, fmt.Sprintf(format, args...))
}

// Line is the text of line n (1-based) of the source, "" past its end.
func (d *Doc) Line(n int) string {
	if n < 1 || n > len(d.lines) {
		return ""
	}
	return d.lines[n-1]
}

// Lines is how many lines the source has.
func (d *Doc) Lines() int { return len(d.lines) }

// File is the file name the Doc reports problems in.
func (d *Doc) File() string { return d.file }

// maxDepth bounds alias chains and merge-key nesting.
const maxDepth = 32

// Parse parses data as a single YAML document named file (in messages);
// noun names the document in them ("plan"). It returns the body (nil for an
// empty document) and false when a problem was reported.
func Parse(report Reporter, file string, data []byte, noun string) (body ast.Node, d *Doc, ok bool) {
	d = &Doc{report: report, file: file, anchors: map[string]ast.Node{},
		lines: strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")}
	f, err := safeParse(data)
	if err != nil {
		p := Pos{File: file, Line: 1, Col: 1}
		msg := err.Error()
		if ye, isYE := err.(yaml.Error); isYE {
			msg = ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				p = clampPos(file, tk.Position.Line, tk.Position.Column)
			}
		}
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		// { and } are YAML syntax inside [ ] and { }: the likely mistake.
		if p.Line <= len(d.lines) && strings.Contains(d.lines[p.Line-1], "${") {
			msg += `; inside [ ] or { }, quote a value that uses a variable: "${NAME}"`
		}
		d.Errorf(p, "invalid YAML: %s", msg)
		return nil, d, false
	}
	var bodies []ast.Node
	for _, dn := range f.Docs {
		if dn != nil && dn.Body != nil {
			bodies = append(bodies, dn.Body)
		}
	}
	if len(bodies) == 0 {
		return nil, d, true
	}
	if len(bodies) > 1 {
		d.Errorf(d.Pos(bodies[1]), "%s must be a single YAML document; a second one starts here", noun)
		return nil, d, false
	}
	d.collectAnchors(bodies[0], 0)
	return bodies[0], d, true
}

// safeParse runs the YAML parser and turns a panic inside it into an error,
// so that no input can crash the caller.
func safeParse(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("cannot parse: %v", r)
		}
	}()
	return parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
}

func clampPos(file string, line, col int) Pos {
	if line < 1 {
		line = 1
	}
	if col < 1 {
		col = 1
	}
	return Pos{File: file, Line: line, Col: col}
}

func (d *Doc) collectAnchors(n ast.Node, depth int) {
	if n == nil || depth > 10000 {
		return
	}
	switch v := n.(type) {
	case *ast.AnchorNode:
		if name, ok := scalarText(v.Name); ok {
			d.anchors[name] = v.Value
		}
		d.collectAnchors(v.Value, depth+1)
	case *ast.TagNode:
		d.collectAnchors(v.Value, depth+1)
	case *ast.MappingNode:
		for _, mv := range v.Values {
			if mv != nil {
				d.collectAnchors(mv.Key, depth+1)
				d.collectAnchors(mv.Value, depth+1)
			}
		}
	case *ast.MappingValueNode:
		d.collectAnchors(v.Key, depth+1)
		d.collectAnchors(v.Value, depth+1)
	case *ast.MappingKeyNode:
		d.collectAnchors(v.Value, depth+1)
	case *ast.SequenceNode:
		for _, e := range v.Values {
			d.collectAnchors(e, depth+1)
		}
	}
}

// scalarText is the text of a plain scalar node (used for anchor and alias names).
func scalarText(n ast.Node) (string, bool) {
	if IsNil(n) {
		return "", false
	}
	if s, ok := n.(*ast.StringNode); ok {
		return s.Value, true
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value, true
	}
	return "", false
}

// IsNil reports a nil interface or a typed nil pointer among the node types
// the parser produces.
func IsNil(n ast.Node) bool {
	if n == nil {
		return true
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		return v == nil
	case *ast.MappingValueNode:
		return v == nil
	case *ast.MappingKeyNode:
		return v == nil
	case *ast.SequenceNode:
		return v == nil
	case *ast.StringNode:
		return v == nil
	case *ast.IntegerNode:
		return v == nil
	case *ast.FloatNode:
		return v == nil
	case *ast.BoolNode:
		return v == nil
	case *ast.NullNode:
		return v == nil
	case *ast.LiteralNode:
		return v == nil
	case *ast.AnchorNode:
		return v == nil
	case *ast.AliasNode:
		return v == nil
	case *ast.TagNode:
		return v == nil
	case *ast.MergeKeyNode:
		return v == nil
	case *ast.InfinityNode:
		return v == nil
	case *ast.NanNode:
		return v == nil
	}
	return false
}

// Pos is where a node starts. A block mapping starts at its first key.
func (d *Doc) Pos(n ast.Node) Pos {
	if IsNil(n) {
		return Pos{File: d.file, Line: 1, Col: 1}
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		if !v.IsFlowStyle && len(v.Values) > 0 && v.Values[0] != nil && !IsNil(v.Values[0].Key) {
			return d.Pos(v.Values[0].Key)
		}
		return d.tokenPos(v.Start)
	case *ast.MappingValueNode:
		if !IsNil(v.Key) {
			return d.Pos(v.Key)
		}
		return d.tokenPos(v.Start)
	case *ast.LiteralNode:
		return d.tokenPos(v.Start)
	case *ast.SequenceNode:
		return d.tokenPos(v.Start)
	case *ast.AnchorNode:
		return d.tokenPos(v.Start)
	case *ast.AliasNode:
		return d.tokenPos(v.Start)
	case *ast.TagNode:
		return d.tokenPos(v.Start)
	}
	return d.tokenPos(n.GetToken())
}

func (d *Doc) tokenPos(tk *token.Token) Pos {
	if tk == nil || tk.Position == nil {
		return Pos{File: d.file, Line: 1, Col: 1}
	}
	return clampPos(d.file, tk.Position.Line, tk.Position.Column)
}

// Kind is the YAML type of a value.
type Kind int

const (
	Null Kind = iota
	Bool
	Int
	Float
	String
	Map
	Seq
	Other
)

// Value is a resolved node (anchors, aliases and standard tags removed).
type Value struct {
	N    ast.Node
	K    Kind
	Text string // scalar text: a string's value, or a number's or bool's source text
	P    Pos
}

// String describes the value for messages: `0`, `"abc"`, `a list`.
func (v Value) String() string {
	switch v.K {
	case Null:
		return "null"
	case Bool, Int, Float:
		return v.Text
	case String:
		return Quote(v.Text)
	case Map:
		if m, ok := v.N.(*ast.MappingNode); ok && len(m.Values) == 0 {
			return "an empty mapping"
		}
		return "a mapping"
	case Seq:
		if s, ok := v.N.(*ast.SequenceNode); ok && len(s.Values) == 0 {
			return "an empty list"
		}
		return "a list"
	}
	return "an unsupported value"
}

// Quote quotes s for a message, shortening long text.
func Quote(s string) string {
	const max = 64
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "..."
	}
	return strconv.Quote(s)
}

// standardTags are the YAML tags that only restate a type.
var standardTags = map[string]bool{
	"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true,
	"!!map": true, "!!seq": true, "!!omap": true, "!!set": true, "!!binary": true, "!!timestamp": true,
	"tag:yaml.org,2002:str": true,
}

// Value resolves n. It reports (and returns false for) unknown aliases,
// alias loops and non-standard tags.
func (d *Doc) Value(n ast.Node, path string) (Value, bool) {
	asString := false
	for depth := 0; ; depth++ {
		if IsNil(n) {
			return Value{K: Null, Text: "null", P: Pos{File: d.file, Line: 1, Col: 1}}, true
		}
		if depth > maxDepth {
			d.Errorf(d.Pos(n), "%s: aliases nested too deeply", Label(path))
			return Value{}, false
		}
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
			continue
		case *ast.AliasNode:
			name, _ := scalarText(v.Value)
			target, ok := d.anchors[name]
			if !ok {
				d.Errorf(d.Pos(v), "%s: unknown alias *%s", Label(path), name)
				return Value{}, false
			}
			n = target
			continue
		case *ast.TagNode:
			tag := ""
			if v.Start != nil {
				tag = v.Start.Value
			}
			if !standardTags[tag] {
				d.Errorf(d.Pos(v), "%s: unsupported YAML tag %s", Label(path), tag)
				return Value{}, false
			}
			if tag == "!!str" || tag == "tag:yaml.org,2002:str" {
				asString = true
			}
			n = v.Value
			continue
		}
		break
	}
	val := Value{N: n, P: d.Pos(n)}
	switch v := n.(type) {
	case *ast.NullNode:
		val.K, val.Text = Null, "null"
	case *ast.BoolNode:
		val.K, val.Text = Bool, tokenText(v)
	case *ast.IntegerNode:
		val.K, val.Text = Int, tokenText(v)
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		val.K, val.Text = Float, tokenText(v)
	case *ast.StringNode:
		val.K, val.Text = String, v.Value
	case *ast.LiteralNode:
		val.K = String
		if v.Value != nil {
			val.Text = v.Value.Value
		}
	case *ast.MappingNode:
		val.K = Map
	case *ast.SequenceNode:
		val.K = Seq
	default:
		val.K, val.Text = Other, tokenText(n)
	}
	if asString && val.K != Map && val.K != Seq && val.K != String {
		val.K = String
	}
	return val, true
}

func tokenText(n ast.Node) string {
	if IsNil(n) {
		return ""
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}

// Label names a path in a message; the root has no name.
func Label(path string) string {
	if path == "" {
		return "plan"
	}
	return path
}

// Join builds a child path.
func Join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// Index builds the path of a list element.
func Index(parent string, i int) string {
	return fmt.Sprintf("%s[%d]", parent, i)
}
