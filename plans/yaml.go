package plans

// This file turns goccy/go-yaml's AST into checked values with positions.
// The plan is decoded by walking the AST instead of unmarshalling into
// structs, so that every problem (not just the first) is reported with the
// line and column it comes from.

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

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
type field struct {
	key  string
	kp   pos      // the key's position
	node ast.Node // the raw value
}

// mapping is a decoded YAML mapping with its keys checked.
type mapping struct {
	d      *doc
	path   string
	p      pos // where a missing key is reported
	fields map[string]field
}

// mapping checks that v is a mapping whose keys are all in allowed (merge
// keys are expanded, duplicates and unknown keys reported).
func (d *doc) mapping(v value, path string, allowed ...string) (*mapping, bool) {
	if v.k != kMap {
		d.errorf(v.p, "%s: must be a mapping, got %s", label(path), v)
		return nil, false
	}
	m := &mapping{d: d, path: path, p: v.p, fields: map[string]field{}}
	d.collectFields(v.n.(*ast.MappingNode), path, m.fields, 0)
	ok := make(map[string]bool, len(allowed))
	for _, a := range allowed {
		ok[a] = true
	}
	keys := make([]string, 0, len(m.fields))
	for k := range m.fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ok[k] {
			continue
		}
		f := m.fields[k]
		if s := suggest(k, allowed); s != "" {
			d.errorf(f.kp, "%s: unknown key; did you mean %q?", join(path, k), s)
		} else {
			d.errorf(f.kp, "%s: unknown key; expected one of %s", join(path, k), strings.Join(allowed, ", "))
		}
	}
	return m, true
}

// collectFields adds mn's keys to out: explicit keys first (a repeated key is
// an error), then keys merged with `<<` that are not already set.
func (d *doc) collectFields(mn *ast.MappingNode, path string, out map[string]field, depth int) {
	var merges []ast.Node
	for _, mv := range mn.Values {
		if mv == nil {
			continue
		}
		if _, isMerge := mv.Key.(*ast.MergeKeyNode); isMerge {
			merges = append(merges, mv.Value)
			continue
		}
		kv, ok := d.value(mv.Key, path)
		if !ok {
			continue
		}
		kp := d.pos(mv.Key)
		if kv.k == kMap || kv.k == kSeq || kv.k == kOther {
			d.errorf(kp, "%s: keys must be plain names, got %s", label(path), kv)
			continue
		}
		key := kv.text
		if prev, dup := out[key]; dup {
			d.errorf(kp, "%s: duplicate key (first set at line %d)", join(path, key), prev.kp.line)
			continue
		}
		out[key] = field{key: key, kp: kp, node: mv.Value}
	}
	for _, mnode := range merges {
		d.merge(mnode, path, out, depth)
	}
}

func (d *doc) merge(n ast.Node, path string, out map[string]field, depth int) {
	if depth >= maxDepth {
		d.errorf(d.pos(n), "%s: merge keys (<<) nested too deeply", label(path))
		return
	}
	v, ok := d.value(n, path)
	if !ok {
		return
	}
	var sources []value
	switch v.k {
	case kMap:
		sources = []value{v}
	case kSeq:
		for _, e := range v.n.(*ast.SequenceNode).Values {
			ev, ok := d.value(e, path)
			if !ok {
				continue
			}
			sources = append(sources, ev)
		}
	}
	for _, src := range sources {
		if src.k != kMap {
			d.errorf(src.p, "%s: a merge key (<<) takes a mapping or a list of mappings, got %s", label(path), src)
			continue
		}
		merged := map[string]field{}
		d.collectFields(src.n.(*ast.MappingNode), path, merged, depth+1)
		for k, f := range merged {
			if _, set := out[k]; !set {
				out[k] = f
			}
		}
	}
	if v.k != kMap && v.k != kSeq {
		d.errorf(v.p, "%s: a merge key (<<) takes a mapping or a list of mappings, got %s", label(path), v)
	}
}

// suggest returns the allowed key closest to k, if it is close enough to be
// a likely typo.
func suggest(k string, allowed []string) string {
	best, bestDist := "", 3
	for _, a := range allowed {
		if dist := editDistance(strings.ToLower(k), a); dist < bestDist {
			best, bestDist = a, dist
		}
	}
	if best != "" && bestDist > len(k)/2 {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// has reports whether key is set (even to null).
func (m *mapping) has(key string) bool {
	_, ok := m.fields[key]
	return ok
}

// keyPos is where key is written, or the mapping's position when absent.
func (m *mapping) keyPos(key string) pos {
	if f, ok := m.fields[key]; ok {
		return f.kp
	}
	return m.p
}

// get resolves key. present is false when the key is absent; ok is false
// when it is absent or could not be resolved (already reported).
func (m *mapping) get(key string) (v value, present, ok bool) {
	f, present := m.fields[key]
	if !present {
		return value{}, false, false
	}
	v, ok = m.d.value(f.node, join(m.path, key))
	if ok && isNil(f.node) {
		v.p = f.kp
	}
	return v, true, ok
}

// missing reports a required key that is absent.
func (m *mapping) missing(key, hint string) {
	prefix := ""
	if m.path != "" {
		prefix = m.path + ": "
	}
	if hint != "" {
		hint = " (" + hint + ")"
	}
	m.d.errorf(m.p, "%smissing required key %q%s", prefix, key, hint)
}

// str decodes a string. A required key that is absent is reported with hint.
// Numbers and booleans are refused: YAML would turn `version: 1.10` into 1.1.
// Variables and --set values are resolved (see resolve); a --set value is
// at setPos.
func (m *mapping) str(key string, required bool, hint string) (s string, p pos, ok bool) {
	path := join(m.path, key)
	v, present, ok := m.get(key)
	if _, set := m.d.vars.override(path); set {
		// The file's value, whatever it is, is replaced.
		return m.resolve(path, "", v.p, present && ok)
	}
	if !present {
		if required {
			m.missing(key, hint)
		}
		return "", m.p, false
	}
	if !ok {
		return "", v.p, false
	}
	if s, p, ok = m.d.asString(v, path); !ok {
		return s, p, ok
	}
	return m.resolve(path, s, p, true)
}

func (d *doc) asString(v value, path string) (string, pos, bool) {
	switch v.k {
	case kString:
		return v.text, v.p, true
	case kInt, kFloat, kBool:
		d.errorf(v.p, "%s: must be a string, got %s (quote it: \"%s\")", path, v, v.text)
	default:
		d.errorf(v.p, "%s: must be a string, got %s", path, v)
	}
	return "", v.p, false
}

// nonEmpty decodes a string that must have non-blank content.
func (m *mapping) nonEmpty(key string, required bool, hint string) (string, pos, bool) {
	s, p, ok := m.str(key, required, hint)
	if ok && strings.TrimSpace(s) == "" {
		m.d.errorf(p, "%s: must not be empty", join(m.path, key))
		return "", p, false
	}
	return s, p, ok
}

// durationRule says which durations are acceptable.
type durationRule int

const (
	positive durationRule = iota // > 0
	nonNegative
)

// duration decodes a Go duration ("200ms", "30s"); an absent key yields def.
func (m *mapping) duration(key string, def time.Duration, rule durationRule) (time.Duration, pos, bool) {
	v, present, ok := m.get(key)
	if !present {
		return def, m.p, true
	}
	if !ok {
		return def, v.p, false
	}
	path := join(m.path, key)
	if v.k != kString && v.k != kInt {
		m.d.errorf(v.p, "%s: must be a duration like \"200ms\" or \"30s\", got %s", path, v)
		return def, v.p, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(v.text))
	if err != nil {
		m.d.errorf(v.p, "%s: must be a duration like \"200ms\" or \"30s\", got %s", path, v)
		return def, v.p, false
	}
	switch {
	case rule == positive && d <= 0:
		m.d.errorf(v.p, "%s: must be greater than 0, got %s", path, v)
		return def, v.p, false
	case rule == nonNegative && d < 0:
		m.d.errorf(v.p, "%s: must not be negative, got %s", path, v)
		return def, v.p, false
	}
	return d, v.p, true
}

// maxInt bounds every integer in a plan; nothing sensible is larger.
const maxInt = 1 << 30

// integer decodes an integer of at least lo and at most hi; an absent key yields def.
func (m *mapping) integer(key string, def, lo, hi int) (int, pos, bool) {
	v, present, ok := m.get(key)
	if !present {
		return def, m.p, true
	}
	if !ok {
		return def, v.p, false
	}
	path := join(m.path, key)
	n, isInt := intValue(v)
	if !isInt {
		m.d.errorf(v.p, "%s: must be a whole number, got %s", path, v)
		return def, v.p, false
	}
	if n < int64(lo) || n > int64(hi) {
		if hi >= maxInt {
			m.d.errorf(v.p, "%s: must be at least %d, got %s", path, lo, v.text)
		} else {
			m.d.errorf(v.p, "%s: must be between %d and %d, got %s", path, lo, hi, v.text)
		}
		return def, v.p, false
	}
	return int(n), v.p, true
}

// intValue is v as an integer, when it is one (and not absurdly large).
func intValue(v value) (int64, bool) {
	if v.k != kInt {
		return 0, false
	}
	in, ok := v.n.(*ast.IntegerNode)
	if !ok {
		return 0, false
	}
	switch n := in.Value.(type) {
	case int64:
		if n > maxInt {
			return maxInt + 1, true
		}
		if n < -maxInt {
			return -maxInt - 1, true
		}
		return n, true
	case uint64:
		if n > maxInt {
			return maxInt + 1, true
		}
		return int64(n), true
	}
	return 0, false
}

// boolean decodes true or false; an absent key yields def.
func (m *mapping) boolean(key string, def bool) (bool, bool) {
	v, present, ok := m.get(key)
	if !present {
		return def, true
	}
	if !ok {
		return def, false
	}
	if v.k != kBool {
		m.d.errorf(v.p, "%s: must be true or false, got %s", join(m.path, key), v)
		return def, false
	}
	b, _ := v.n.(*ast.BoolNode)
	return b != nil && b.Value, true
}

// enum decodes one of a fixed set of words; an absent key yields def.
func (m *mapping) enum(key, def string, allowed ...string) (string, bool) {
	v, present, ok := m.get(key)
	if !present {
		return def, true
	}
	if !ok {
		return def, false
	}
	for _, a := range allowed {
		if v.k == kString && v.text == a {
			return a, true
		}
	}
	m.d.errorf(v.p, "%s: must be %s, got %s", join(m.path, key), orList(allowed), v)
	return def, false
}

// orList renders ["a","b","c"] as "a, b or c".
func orList(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// optMapping decodes an optional section. Absent or null yields nil, true.
func (m *mapping) optMapping(key string, allowed ...string) (*mapping, bool) {
	v, present, ok := m.get(key)
	if !present {
		return nil, true
	}
	if !ok {
		return nil, false
	}
	if v.k == kNull {
		return nil, true
	}
	return m.d.mapping(v, join(m.path, key), allowed...)
}

// strList decodes a list of non-empty strings; absent or null is empty.
func (m *mapping) strList(key, what string) ([]string, bool) {
	v, present, ok := m.get(key)
	if !present {
		return nil, true
	}
	if !ok {
		return nil, false
	}
	path := join(m.path, key)
	if v.k == kNull {
		return nil, true
	}
	if v.k != kSeq {
		m.d.errorf(v.p, "%s: must be a list of %s, got %s", path, what, v)
		return nil, false
	}
	var out []string
	good := true
	for i, e := range v.n.(*ast.SequenceNode).Values {
		ev, ok := m.d.value(e, index(path, i))
		if !ok {
			good = false
			continue
		}
		s, p, ok := m.d.asString(ev, index(path, i))
		if !ok {
			good = false
			continue
		}
		if strings.TrimSpace(s) == "" {
			m.d.errorf(p, "%s: must not be empty", index(path, i))
			good = false
			continue
		}
		out = append(out, s)
	}
	return out, good
}
