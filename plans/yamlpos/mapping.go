package yamlpos

import (
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// field is one key of a mapping.
type field struct {
	key  string
	kp   Pos      // the key's position
	node ast.Node // the raw value
}

// Mapping is a decoded YAML mapping with its keys checked. Its getters
// report a problem (and return false) for a value of the wrong type, with
// the value's position and path.
type Mapping struct {
	D      *Doc
	Path   string // "" for the document's root
	P      Pos    // where a missing key is reported
	fields map[string]field
}

// Empty is a mapping without keys at path (a section given as null), so
// that its getters yield their defaults.
func Empty(d *Doc, path string, p Pos) *Mapping {
	return &Mapping{D: d, Path: path, P: p, fields: map[string]field{}}
}

// Mapping checks that v is a mapping whose keys are all in allowed (merge
// keys are expanded, duplicates and unknown keys reported).
func (d *Doc) Mapping(v Value, path string, allowed ...string) (*Mapping, bool) {
	if v.K != Map {
		d.Errorf(v.P, "%s: must be a mapping, got %s", Label(path), v)
		return nil, false
	}
	m := &Mapping{D: d, Path: path, P: v.P, fields: map[string]field{}}
	d.collectFields(v.N.(*ast.MappingNode), path, m.fields, 0)
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
		if s := Suggest(k, allowed); s != "" {
			d.Errorf(f.kp, "%s: unknown key; did you mean %q?", Join(path, k), s)
		} else {
			d.Errorf(f.kp, "%s: unknown key; expected one of %s", Join(path, k), strings.Join(allowed, ", "))
		}
	}
	return m, true
}

// collectFields adds mn's keys to out: explicit keys first (a repeated key is
// an error), then keys merged with `<<` that are not already set.
func (d *Doc) collectFields(mn *ast.MappingNode, path string, out map[string]field, depth int) {
	var merges []ast.Node
	for _, mv := range mn.Values {
		if mv == nil {
			continue
		}
		if _, isMerge := mv.Key.(*ast.MergeKeyNode); isMerge {
			merges = append(merges, mv.Value)
			continue
		}
		kv, ok := d.Value(mv.Key, path)
		if !ok {
			continue
		}
		kp := d.Pos(mv.Key)
		if kv.K == Map || kv.K == Seq || kv.K == Other {
			d.Errorf(kp, "%s: keys must be plain names, got %s", Label(path), kv)
			continue
		}
		key := kv.Text
		if prev, dup := out[key]; dup {
			d.Errorf(kp, "%s: duplicate key (first set at line %d)", Join(path, key), prev.kp.Line)
			continue
		}
		out[key] = field{key: key, kp: kp, node: mv.Value}
	}
	for _, mnode := range merges {
		d.merge(mnode, path, out, depth)
	}
}

func (d *Doc) merge(n ast.Node, path string, out map[string]field, depth int) {
	if depth >= maxDepth {
		d.Errorf(d.Pos(n), "%s: merge keys (<<) nested too deeply", Label(path))
		return
	}
	v, ok := d.Value(n, path)
	if !ok {
		return
	}
	var sources []Value
	switch v.K {
	case Map:
		sources = []Value{v}
	case Seq:
		for _, e := range v.N.(*ast.SequenceNode).Values {
			ev, ok := d.Value(e, path)
			if !ok {
				continue
			}
			sources = append(sources, ev)
		}
	}
	for _, src := range sources {
		if src.K != Map {
			d.Errorf(src.P, "%s: a merge key (<<) takes a mapping or a list of mappings, got %s", Label(path), src)
			continue
		}
		merged := map[string]field{}
		d.collectFields(src.N.(*ast.MappingNode), path, merged, depth+1)
		for k, f := range merged {
			if _, set := out[k]; !set {
				out[k] = f
			}
		}
	}
	if v.K != Map && v.K != Seq {
		d.Errorf(v.P, "%s: a merge key (<<) takes a mapping or a list of mappings, got %s", Label(path), v)
	}
}

// Suggest returns the word of allowed closest to k, if it is close enough to be
// a likely typo.
func Suggest(k string, allowed []string) string {
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

// Has reports whether key is set (even to null).
func (m *Mapping) Has(key string) bool {
	_, ok := m.fields[key]
	return ok
}

// KeyPos is where key is written, or the mapping's position when absent.
func (m *Mapping) KeyPos(key string) Pos {
	if f, ok := m.fields[key]; ok {
		return f.kp
	}
	return m.P
}

// Get resolves key. present is false when the key is absent; ok is false
// when it is absent or could not be resolved (already reported).
func (m *Mapping) Get(key string) (v Value, present, ok bool) {
	f, present := m.fields[key]
	if !present {
		return Value{}, false, false
	}
	v, ok = m.D.Value(f.node, Join(m.Path, key))
	if ok && IsNil(f.node) {
		v.P = f.kp
	}
	return v, true, ok
}

// Missing reports a required key that is absent.
func (m *Mapping) Missing(key, hint string) {
	prefix := ""
	if m.Path != "" {
		prefix = m.Path + ": "
	}
	if hint != "" {
		hint = " (" + hint + ")"
	}
	m.D.Errorf(m.P, "%smissing required key %q%s", prefix, key, hint)
}

// Str decodes a string. A required key that is absent is reported with hint.
// Numbers and booleans are refused: YAML would turn `version: 1.10` into 1.1.
// The Doc's Hook, if any, has the last word (see StringHook).
func (m *Mapping) Str(key string, required bool, hint string) (s string, p Pos, ok bool) {
	path := Join(m.Path, key)
	v, present, ok := m.Get(key)
	if m.D.Hook != nil && m.D.Hook.Overrides(path) {
		// The file's value, whatever it is, is replaced.
		return m.D.Hook.Resolve(m.D, path, "", v.P, present && ok)
	}
	if !present {
		if required {
			m.Missing(key, hint)
		}
		return "", m.P, false
	}
	if !ok {
		return "", v.P, false
	}
	if s, p, ok = m.D.AsString(v, path); !ok || m.D.Hook == nil {
		return s, p, ok
	}
	return m.D.Hook.Resolve(m.D, path, s, p, true)
}

// AsString is v as a string; numbers and booleans are refused (quote them).
func (d *Doc) AsString(v Value, path string) (string, Pos, bool) {
	switch v.K {
	case String:
		return v.Text, v.P, true
	case Int, Float, Bool:
		d.Errorf(v.P, "%s: must be a string, got %s (quote it: \"%s\")", path, v, v.Text)
	default:
		d.Errorf(v.P, "%s: must be a string, got %s", path, v)
	}
	return "", v.P, false
}

// NonEmpty decodes a string that must have non-blank content.
func (m *Mapping) NonEmpty(key string, required bool, hint string) (string, Pos, bool) {
	s, p, ok := m.Str(key, required, hint)
	if ok && strings.TrimSpace(s) == "" {
		m.D.Errorf(p, "%s: must not be empty", Join(m.Path, key))
		return "", p, false
	}
	return s, p, ok
}

// DurationRule says which durations are acceptable.
type DurationRule int

const (
	Positive    DurationRule = iota // > 0
	NonNegative                     // >= 0
)

// Duration decodes a Go duration ("200ms", "30s"); an absent key yields def.
func (m *Mapping) Duration(key string, def time.Duration, rule DurationRule) (time.Duration, Pos, bool) {
	v, present, ok := m.Get(key)
	if !present {
		return def, m.P, true
	}
	if !ok {
		return def, v.P, false
	}
	path := Join(m.Path, key)
	if v.K != String && v.K != Int {
		m.D.Errorf(v.P, "%s: must be a duration like \"200ms\" or \"30s\", got %s", path, v)
		return def, v.P, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(v.Text))
	if err != nil {
		m.D.Errorf(v.P, "%s: must be a duration like \"200ms\" or \"30s\", got %s", path, v)
		return def, v.P, false
	}
	switch {
	case rule == Positive && d <= 0:
		m.D.Errorf(v.P, "%s: must be greater than 0, got %s", path, v)
		return def, v.P, false
	case rule == NonNegative && d < 0:
		m.D.Errorf(v.P, "%s: must not be negative, got %s", path, v)
		return def, v.P, false
	}
	return d, v.P, true
}

// MaxInt bounds every integer in a plan; nothing sensible is larger.
const MaxInt = 1 << 30

// Integer decodes an integer of at least lo and at most hi; an absent key yields def.
func (m *Mapping) Integer(key string, def, lo, hi int) (int, Pos, bool) {
	v, present, ok := m.Get(key)
	if !present {
		return def, m.P, true
	}
	if !ok {
		return def, v.P, false
	}
	path := Join(m.Path, key)
	n, isInt := IntValue(v)
	if !isInt {
		m.D.Errorf(v.P, "%s: must be a whole number, got %s", path, v)
		return def, v.P, false
	}
	if n < int64(lo) || n > int64(hi) {
		if hi >= MaxInt {
			m.D.Errorf(v.P, "%s: must be at least %d, got %s", path, lo, v.Text)
		} else {
			m.D.Errorf(v.P, "%s: must be between %d and %d, got %s", path, lo, hi, v.Text)
		}
		return def, v.P, false
	}
	return int(n), v.P, true
}

// IntValue is v as an integer, when it is one (and not absurdly large).
func IntValue(v Value) (int64, bool) {
	if v.K != Int {
		return 0, false
	}
	in, ok := v.N.(*ast.IntegerNode)
	if !ok {
		return 0, false
	}
	switch n := in.Value.(type) {
	case int64:
		if n > MaxInt {
			return MaxInt + 1, true
		}
		if n < -MaxInt {
			return -MaxInt - 1, true
		}
		return n, true
	case uint64:
		if n > MaxInt {
			return MaxInt + 1, true
		}
		return int64(n), true
	}
	return 0, false
}

// Boolean decodes true or false; an absent key yields def.
func (m *Mapping) Boolean(key string, def bool) (bool, bool) {
	v, present, ok := m.Get(key)
	if !present {
		return def, true
	}
	if !ok {
		return def, false
	}
	if v.K != Bool {
		m.D.Errorf(v.P, "%s: must be true or false, got %s", Join(m.Path, key), v)
		return def, false
	}
	b, _ := v.N.(*ast.BoolNode)
	return b != nil && b.Value, true
}

// Enum decodes one of a fixed set of words; an absent key yields def.
func (m *Mapping) Enum(key, def string, allowed ...string) (string, bool) {
	v, present, ok := m.Get(key)
	if !present {
		return def, true
	}
	if !ok {
		return def, false
	}
	for _, a := range allowed {
		if v.K == String && v.Text == a {
			return a, true
		}
	}
	m.D.Errorf(v.P, "%s: must be %s, got %s", Join(m.Path, key), OrList(allowed), v)
	return def, false
}

// OrList renders ["a","b","c"] as "a, b or c".
func OrList(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// OptMapping decodes an optional section. Absent or null yields nil, true.
func (m *Mapping) OptMapping(key string, allowed ...string) (*Mapping, bool) {
	v, present, ok := m.Get(key)
	if !present {
		return nil, true
	}
	if !ok {
		return nil, false
	}
	if v.K == Null {
		return nil, true
	}
	return m.D.Mapping(v, Join(m.Path, key), allowed...)
}

// StrList decodes a list of non-empty strings; absent or null is empty.
func (m *Mapping) StrList(key, what string) ([]string, bool) {
	v, present, ok := m.Get(key)
	if !present {
		return nil, true
	}
	if !ok {
		return nil, false
	}
	path := Join(m.Path, key)
	if v.K == Null {
		return nil, true
	}
	if v.K != Seq {
		m.D.Errorf(v.P, "%s: must be a list of %s, got %s", path, what, v)
		return nil, false
	}
	var out []string
	good := true
	for i, e := range v.N.(*ast.SequenceNode).Values {
		ev, ok := m.D.Value(e, Index(path, i))
		if !ok {
			good = false
			continue
		}
		s, p, ok := m.D.AsString(ev, Index(path, i))
		if !ok {
			good = false
			continue
		}
		if strings.TrimSpace(s) == "" {
			m.D.Errorf(p, "%s: must not be empty", Index(path, i))
			good = false
			continue
		}
		out = append(out, s)
	}
	return out, good
}
