package plans

// The plan is decoded with package yamlpos (the position-keeping YAML
// walker); these are its names as the decoder uses them.

import (
	"fmt"
	"strings"

	"github.com/drover-dev/drover/plans/yamlpos"
	"github.com/goccy/go-yaml/ast"
)

type (
	pos     = yamlpos.Pos
	value   = yamlpos.Value
	mapping = yamlpos.Mapping
	doc     = yamlpos.Doc
)

const (
	kNull   = yamlpos.Null
	kBool   = yamlpos.Bool
	kInt    = yamlpos.Int
	kFloat  = yamlpos.Float
	kString = yamlpos.String
	kMap    = yamlpos.Map
	kSeq    = yamlpos.Seq

	positive    = yamlpos.Positive
	nonNegative = yamlpos.NonNegative
	maxInt      = yamlpos.MaxInt
)

var (
	quote  = yamlpos.Quote
	label  = yamlpos.Label
	join   = yamlpos.Join
	index  = yamlpos.Index
	orList = yamlpos.OrList
)

// sink collects problems.
type sink struct {
	errs Errors
}

// errorf records a problem. A message is always one line: text quoted from
// the file cannot break it.
func (s *sink) errorf(p pos, format string, args ...any) {
	msg := strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(fmt.Sprintf(format, args...))
	s.errs = append(s.errs, Error{File: p.File, Line: p.Line, Col: p.Col, Msg: msg})
}

// parseYAML parses one file of a plan (see yamlpos.Parse), its problems
// going to s; vs resolves its variables (nil: none, as in an inventory,
// where ${ is refused).
func parseYAML(s *sink, file string, data []byte, noun string, vs *vars) (ast.Node, *doc, bool) {
	body, d, ok := yamlpos.Parse(func(p pos, msg string) { s.errorf(p, "%s", msg) }, file, data, noun)
	d.Hook = resolver{vs}
	return body, d, ok
}
