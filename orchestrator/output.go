package orchestrator

import (
	"strings"
)

// maxOutput bounds the command output the engine keeps: enough to see why a
// command failed, never enough to fill memory with a chatty restart script.
const maxOutput = 8 << 10

// shq quotes s for a POSIX shell.
func shq(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./+:=@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
