package plans

import "fmt"

// Position is where a plan key is written, 1-based; Line 0 is a value
// given on the command line (File "--set").
type Position struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

// String renders the position as FILE:LINE:COL (FILE alone for Line 0).
func (p Position) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Where names a key for a message about its value: "FILE:LINE:COL: key"
// when the plan says where it is written (Keys), else the key alone (a
// default, or a plan recorded before Keys existed).
func (p *Plan) Where(key string) string {
	if at, ok := p.Keys[key]; ok && at.File != "" {
		return at.String() + ": " + key
	}
	return key
}
