package plans

// This file turns goccy/go-yaml's AST into checked values with positions.
// The plan is decoded by walking the AST instead of unmarshalling into
// structs, so that every problem (not just the first) is reported with the
// line and column it comes from.

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// pos is a position in a file, 1-based.
type pos struct {
	file      string
	line, col int
}

// sink collects problems.
type sink struct {
	errs Errors
}

// errorf records a problem. A message is always one line: text quoted from
// the file cannot break it.
func (s *sink) errorf(p pos, format string, args ...any) {
	msg := strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(fmt.Sprintf(format, args...))
	s.errs = append(s.errs, Error{File: p.file, Line: p.line, Col: p.col, Msg: msg})
}

// doc is one parsed YAML file.
type doc struct {
	*sink
	file    string
	anchors map[string]ast.Node
	lines   []string // the source, to place errors inside a scalar
	vars    *vars    // nil: no variables or --set (an inventory)
}

// maxDepth bounds alias chains and merge-key nesting.
const maxDepth = 32

// parseYAML parses data as a single YAML document. It returns the body (nil
// for an empty document) and false when a problem was reported.
func parseYAML(s *sink, file string, data []byte, noun string) (body ast.Node, d *doc, ok bool) {
	d = &doc{sink: s, file: file, anchors: map[string]ast.Node{},
		lines: strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")}
	f, err := safeParse(data)
	if err != nil {
		p := pos{file: file, line: 1, col: 1}
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
		if p.line <= len(d.lines) && strings.Contains(d.lines[p.line-1], "${") {
			msg += `; inside [ ] or { }, quote a value that uses a variable: "${NAME}"`
		}
		s.errorf(p, "invalid YAML: %s", msg)
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
		s.errorf(d.pos(bodies[1]), "%s must be a single YAML document; a second one starts here", noun)
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

func clampPos(file string, line, col int) pos {
	if line < 1 {
		line = 1
	}
	if col < 1 {
		col = 1
	}
	return pos{file: file, line: line, col: col}
}

func (d *doc) collectAnchors(n ast.Node, depth int) {
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
	if isNil(n) {
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

// isNil reports a nil interface or a typed nil pointer among the node types
// the parser produces.
func isNil(n ast.Node) bool {
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

// pos is where a node starts. A block mapping starts at its first key.
func (d *doc) pos(n ast.Node) pos {
	if isNil(n) {
		return pos{file: d.file, line: 1, col: 1}
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		if !v.IsFlowStyle && len(v.Values) > 0 && v.Values[0] != nil && !isNil(v.Values[0].Key) {
			return d.pos(v.Values[0].Key)
		}
		return d.tokenPos(v.Start)
	case *ast.MappingValueNode:
		if !isNil(v.Key) {
			return d.pos(v.Key)
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

func (d *doc) tokenPos(tk *token.Token) pos {
	if tk == nil || tk.Position == nil {
		return pos{file: d.file, line: 1, col: 1}
	}
	return clampPos(d.file, tk.Position.Line, tk.Position.Column)
}

// kind is the YAML type of a value.
type kind int

const (
	kNull kind = iota
	kBool
	kInt
	kFloat
	kString
	kMap
	kSeq
	kOther
)

// value is a resolved node (anchors, aliases and standard tags removed).
type value struct {
	n    ast.Node
	k    kind
	text string // scalar text: a string's value, or a number's or bool's source text
	p    pos
}

// String describes the value for messages: `0`, `"abc"`, `a list`.
func (v value) String() string {
	switch v.k {
	case kNull:
		return "null"
	case kBool, kInt, kFloat:
		return v.text
	case kString:
		return quote(v.text)
	case kMap:
		if m, ok := v.n.(*ast.MappingNode); ok && len(m.Values) == 0 {
			return "an empty mapping"
		}
		return "a mapping"
	case kSeq:
		if s, ok := v.n.(*ast.SequenceNode); ok && len(s.Values) == 0 {
			return "an empty list"
		}
		return "a list"
	}
	return "an unsupported value"
}

// quote quotes s for a message, shortening long text.
func quote(s string) string {
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

// value resolves n. It reports (and returns false for) unknown aliases,
// alias loops and non-standard tags.
func (d *doc) value(n ast.Node, path string) (value, bool) {
	asString := false
	for depth := 0; ; depth++ {
		if isNil(n) {
			return value{k: kNull, text: "null", p: pos{file: d.file, line: 1, col: 1}}, true
		}
		if depth > maxDepth {
			d.errorf(d.pos(n), "%s: aliases nested too deeply", label(path))
			return value{}, false
		}
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
			continue
		case *ast.AliasNode:
			name, _ := scalarText(v.Value)
			target, ok := d.anchors[name]
			if !ok {
				d.errorf(d.pos(v), "%s: unknown alias *%s", label(path), name)
				return value{}, false
			}
			n = target
			continue
		case *ast.TagNode:
			tag := ""
			if v.Start != nil {
				tag = v.Start.Value
			}
			if !standardTags[tag] {
				d.errorf(d.pos(v), "%s: unsupported YAML tag %s", label(path), tag)
				return value{}, false
			}
			if tag == "!!str" || tag == "tag:yaml.org,2002:str" {
				asString = true
			}
			n = v.Value
			continue
		}
		break
	}
	val := value{n: n, p: d.pos(n)}
	switch v := n.(type) {
	case *ast.NullNode:
		val.k, val.text = kNull, "null"
	case *ast.BoolNode:
		val.k, val.text = kBool, tokenText(v)
	case *ast.IntegerNode:
		val.k, val.text = kInt, tokenText(v)
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		val.k, val.text = kFloat, tokenText(v)
	case *ast.StringNode:
		val.k, val.text = kString, v.Value
	case *ast.LiteralNode:
		val.k = kString
		if v.Value != nil {
			val.text = v.Value.Value
		}
	case *ast.MappingNode:
		val.k = kMap
	case *ast.SequenceNode:
		val.k = kSeq
	default:
		val.k, val.text = kOther, tokenText(n)
	}
	if asString && val.k != kMap && val.k != kSeq && val.k != kString {
		val.k = kString
	}
	return val, true
}

func tokenText(n ast.Node) string {
	if isNil(n) {
		return ""
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}

// label names a path in a message; the root has no name.
func label(path string) string {
	if path == "" {
		return "plan"
	}
	return path
}

// join builds a child path.
func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func index(parent string, i int) string {
	return fmt.Sprintf("%s[%d]", parent, i)
}

// field is one key of a mapping.
