package plans

// This file resolves the values a plan takes from outside its file: ${NAME}
// variables and --set overrides. Both apply to the keys that change with
// every release (VarKeys) and nowhere else: the rest of a plan describes the
// fleet and is reviewed as written, and in the commands run on hosts
// (release.restart, health.command, hooks) ${...} belongs to the host's
// shell. Substitution happens on a decoded scalar, never on the file's
// text, so a value cannot change the YAML's structure and every position
// stays the file's own.

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// VarKeys are the plan keys that take ${NAME} variables and --set.
var VarKeys = []string{"version", "release.artifact"}

// shellKeys are the string keys whose ${...} is the host shell's (hooks are
// lists and never reach the check).
var shellKeys = []string{"release.restart", "health.command"}

// varNameRE is what NAME in ${NAME} must be: an environment variable name.
var varNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Where a value came from, in Var.From.
const (
	FromEnv     = "environment"
	FromDefault = "default"
	FromSet     = "--set"
)

// Var records one value a plan took from outside its file, for `plan show`.
type Var struct {
	Key   string // the plan key: version or release.artifact
	Name  string // the variable, "" for --set
	Value string
	From  string // FromEnv, FromDefault or FromSet
	// File, Line and Col are where the ${NAME} is written; for --set, where
	// the value it replaces is written (Line 0 when the file has no value).
	File      string
	Line, Col int
}

// ParseSet parses a --set argument, KEY=VALUE, into its parts; KEY must be
// one of VarKeys.
func ParseSet(arg string) (key, value string, err error) {
	key, value, ok := strings.Cut(arg, "=")
	switch {
	case !ok:
		return "", "", fmt.Errorf("--set %s: want KEY=VALUE, like version=2.0.1", arg)
	case !slices.Contains(VarKeys, key):
		return "", "", fmt.Errorf("--set %s: %q cannot be set from the command line; --set takes %s", arg, key, orList(VarKeys))
	}
	return key, value, nil
}

// setPos is where a problem with a --set value is reported.
var setPos = pos{File: "--set"}

// fromSet reports a value given with --set, which has no position in a file.
func fromSet(p pos) bool { return p.File == setPos.File && p.Line == 0 }

// vars resolves variables and --set values for one plan.
type vars struct {
	env  func(string) (string, bool)
	set  map[string]string
	used []Var
}

// override returns the --set value of the key at path.
func (vs *vars) override(path string) (string, bool) {
	if vs == nil || !slices.Contains(VarKeys, path) {
		return "", false
	}
	s, ok := vs.set[path]
	return s, ok
}

// resolver is the plan's yamlpos.StringHook: its variables (vs, nil in an
// inventory) and --set values.
type resolver struct{ vs *vars }

// Overrides reports a key that --set replaces.
func (r resolver) Overrides(path string) bool {
	_, ok := r.vs.override(path)
	return ok
}

// Resolve decodes the string key at path. A --set value replaces the file's
// (present or not); else ${NAME} in a VarKeys value is substituted, and in
// any other value but a shell command it is refused rather than left as is.
func (r resolver) Resolve(d *doc, path, s string, p pos, present bool) (string, pos, bool) {
	vs := r.vs
	if v, ok := vs.override(path); ok {
		at := Var{Key: path, Value: v, From: FromSet}
		if present {
			at.File, at.Line, at.Col = p.File, p.Line, p.Col
		}
		vs.record(at)
		return v, setPos, true
	}
	if !present || !strings.Contains(s, "${") {
		return s, p, present
	}
	if slices.Contains(shellKeys, path) {
		return s, p, true
	}
	out, ok := vs.expand(d, path, s, p, slices.Contains(VarKeys, path))
	return out, p, ok
}

func (vs *vars) record(v Var) {
	if vs == nil {
		return
	}
	// A key may be decoded twice; it is recorded once.
	if !slices.Contains(vs.used, v) {
		vs.used = append(vs.used, v)
	}
}

// expand substitutes ${NAME} and ${NAME:-default} in s, the value of path
// written at p; $${ stands for a literal ${. Every problem is reported at
// its own ${. In a key that takes no variables (allowed false) a ${ is
// refused rather than left for the operator to find on the hosts.
func (vs *vars) expand(d *doc, path, s string, p pos, allowed bool) (string, bool) {
	var b strings.Builder
	ok := true
	for i, n := 0, 0; ; n++ {
		j := strings.Index(s[i:], "${")
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		j += i
		if j > 0 && s[j-1] == '$' { // $${: a literal ${
			b.WriteString(s[i : j-1])
			b.WriteString("${")
			i = j + 2
			continue
		}
		b.WriteString(s[i:j])
		at := varPos(d, p, n)
		if !allowed {
			d.Errorf(at, "%s: ${...} variables are expanded only in %s (write $${ for a literal ${)", path, orList(VarKeys))
			return "", false
		}
		end := strings.IndexByte(s[j:], '}')
		if end < 0 {
			d.Errorf(at, "%s: unterminated ${ (want ${NAME} or ${NAME:-default})", path)
			return "", false
		}
		ref := s[j+2 : j+end]
		i = j + end + 1
		name, def, hasDef := strings.Cut(ref, ":-")
		switch {
		case !varNameRE.MatchString(name):
			d.Errorf(at, "%s: ${%s}: a variable name is letters, digits and _, not starting with a digit (want ${NAME} or ${NAME:-default})", path, ref)
			ok = false
			continue
		case strings.Contains(def, "${"):
			d.Errorf(at, "%s: ${%s}: a default cannot contain another variable", path, ref)
			ok = false
			continue
		}
		val, set := "", false
		if vs != nil && vs.env != nil {
			val, set = vs.env(name)
		}
		from := FromEnv
		switch {
		case (!set || val == "") && hasDef:
			val, from = def, FromDefault
		case !set:
			d.Errorf(at, "%s: variable %s is not set; set it in the environment, use --set %s=VALUE, or give a default: ${%s:-VALUE}", path, name, path, name)
			ok = false
			continue
		case val == "":
			d.Errorf(at, "%s: variable %s is empty; set it, use --set %s=VALUE, or give a default: ${%s:-VALUE}", path, name, path, name)
			ok = false
			continue
		}
		vs.record(Var{Key: path, Name: name, Value: val, From: from, File: at.File, Line: at.Line, Col: at.Col})
		b.WriteString(val)
	}
	return b.String(), ok
}

// varPos is where the n-th ${ of a value written at p is in the file:
// the n-th ${ from p on. Quoting, folding and block indentation change
// columns but not the order of the ${ (escapes that spell ${ are the only
// exception); when the source does not have it, the value's start is used.
func varPos(d *doc, p pos, n int) pos {
	if p.Line < 1 || p.Line > d.Lines() {
		return p
	}
	line, from := p.Line, colOffset(d.Line(p.Line), p.Col)
	for seen := 0; line <= d.Lines(); line, from = line+1, 0 {
		text := d.Line(line)
		for {
			k := strings.Index(text[from:], "${")
			if k < 0 {
				break
			}
			k += from
			if seen == n {
				return pos{File: p.File, Line: line, Col: utf8.RuneCountInString(text[:k]) + 1}
			}
			seen++
			from = k + 2
		}
	}
	return p
}

// colOffset is the byte offset of the 1-based (rune) column col in line.
func colOffset(line string, col int) int {
	off := 0
	for i := 1; i < col && off < len(line); i++ {
		_, size := utf8.DecodeRuneInString(line[off:])
		off += size
	}
	return off
}
