package plans

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrInvalid matches (with errors.Is) every error that Load and Parse return
// because the plan itself is wrong: a YAML syntax error, a failed validation,
// or a plan file that cannot be read. The CLI maps it to exit code 2.
var ErrInvalid = errors.New("invalid plan")

// Error is one problem in a plan, at a position in a file (1-based).
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
}

// Error renders the problem as FILE:LINE:COL: MSG, or FILE: MSG for a value
// that is not in a file (a --set value: FILE is "--set", Line 0).
func (e Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Is reports that every plan problem is an ErrInvalid.
func (e Error) Is(target error) bool { return target == ErrInvalid }

// Errors is every problem found in a plan (and its inventory), sorted by
// file and position. Load and Parse return it as *Errors.
type Errors []Error

// Error renders one problem per line.
func (e *Errors) Error() string {
	if e == nil || len(*e) == 0 {
		return ErrInvalid.Error()
	}
	lines := make([]string, len(*e))
	for i, pe := range *e {
		lines[i] = pe.Error()
	}
	return strings.Join(lines, "\n")
}

// Is reports that the list is an ErrInvalid.
func (e *Errors) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the individual problems, so errors.As can reach an Error.
func (e *Errors) Unwrap() []error {
	if e == nil {
		return nil
	}
	out := make([]error, len(*e))
	for i, pe := range *e {
		out[i] = pe
	}
	return out
}

// sortFor orders the problems: the plan file's first, then other files by
// name, each by line and column; exact duplicates are dropped.
func (e *Errors) sortFor(planFile string) {
	list := *e
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.File != b.File {
			if a.File == planFile || b.File == planFile {
				return a.File == planFile
			}
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	seen := make(map[Error]bool, len(list))
	out := list[:0]
	for _, pe := range list {
		if seen[pe] {
			continue
		}
		seen[pe] = true
		out = append(out, pe)
	}
	*e = out
}
