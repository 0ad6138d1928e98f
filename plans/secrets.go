package plans

import (
	"regexp"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// envNameRE is what a name in secrets: must be: an environment variable.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// secrets decodes the optional top-level `secrets:` list: names of
// environment-like variables whose values drover blanks out of the command
// output it records (see orchestrator's redaction), for example
// `secrets: [API_TOKEN, DB_PASSWORD]`.
func (l *loader) secrets(top *mapping, p *Plan) {
	v, present, ok := top.Get("secrets")
	if !present || !ok || v.K == kNull {
		return
	}
	if v.K != kSeq {
		l.errorf(v.P, "secrets: must be a list of variable names, like [API_TOKEN], got %s", v)
		return
	}
	seen := map[string]bool{}
	for i, e := range v.N.(*ast.SequenceNode).Values {
		path := index("secrets", i)
		ev, ok := top.D.Value(e, path)
		if !ok {
			continue
		}
		s, sp, ok := top.D.AsString(ev, path)
		if !ok {
			continue
		}
		switch {
		case !envNameRE.MatchString(s):
			l.errorf(sp, "%s: must be a variable name (letters, digits and _, not starting with a digit), got %s", path, quote(s))
		case seen[strings.ToUpper(s)]:
			l.errorf(sp, "%s: %s is listed twice", path, quote(s))
		default:
			seen[strings.ToUpper(s)] = true
			p.Secrets = append(p.Secrets, s)
		}
	}
}
