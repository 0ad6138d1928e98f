package plans

import (
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

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
