// Package shell quotes words for a POSIX shell: the one rule every script
// drover writes (the pipeline's stages, the agent installer, the commands
// the CLI prints for pasting) uses.
package shell

import "strings"

// safe are the bytes that never mean anything to a POSIX shell inside a
// word that is not the command name: a word made only of them needs no
// quotes. An allowlist, so that anything unforeseen (a control character,
// a byte of a multi-byte rune, a glob or expansion character) is quoted.
const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./+:=@%"

// Quote returns s as one word for a POSIX shell (sh, dash, bash, ksh, zsh):
// bare when every byte of it is safe, else in single quotes, inside which
// nothing is special; each single quote in s is closed, escaped and
// reopened. The empty string is a pair of single quotes.
func Quote(s string) string {
	if s != "" && strings.Trim(s, safe) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
