package orchestrator

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// maxOutput bounds the command output the engine keeps: enough to see why a
// command failed, never enough to fill memory with a chatty restart script.
const maxOutput = 8 << 10

// What of a failed command's output is recorded: it goes into events and
// the replicated state, which every read token can see and every node
// keeps, so only its end (where the reason usually is), and with secret
// values blanked.
const (
	maxRecordedBytes = 2 << 10
	maxRecordedLines = 20
)

// assignmentRE finds NAME=value and NAME: value (value bare or quoted).
var assignmentRE = regexp.MustCompile(`\b([A-Za-z_][A-Za-z0-9_]*)(\s*[=:]\s*)("[^"\n]*"|'[^'\n]*'|[^\s"']+)`)

// secretNameRE matches names that hold secrets by convention; a plan's
// secrets: list adds its own.
var secretNameRE = regexp.MustCompile(`(?i)(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)`)

// redacted replaces the value of every assignment to a secret name.
func redacted(s string, secrets []string) string {
	listed := make(map[string]bool, len(secrets))
	for _, n := range secrets {
		listed[strings.ToUpper(n)] = true
	}
	return assignmentRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := assignmentRE.FindStringSubmatch(m)
		if !listed[strings.ToUpper(sub[1])] && !secretNameRE.MatchString(sub[1]) {
			return m
		}
		return sub[1] + sub[2] + "[redacted]"
	})
}

// recordedOutput is the part of a failed command's output that leaves the
// engine: redacted, then its last maxRecordedLines lines and at most
// maxRecordedBytes, marked when cut.
func recordedOutput(out string, secrets []string) string {
	out = redacted(out, secrets)
	kept := out
	trimmed := strings.TrimRight(kept, "\n")
	if n := strings.Count(trimmed, "\n") + 1; n > maxRecordedLines {
		i := len(trimmed)
		for range maxRecordedLines {
			i = strings.LastIndexByte(trimmed[:i], '\n')
		}
		kept = kept[i+1:]
	}
	if len(kept) > maxRecordedBytes {
		start := len(kept) - maxRecordedBytes
		for start < len(kept) && !utf8.RuneStart(kept[start]) {
			start++
		}
		kept = kept[start:]
	}
	if cut := len(out) - len(kept); cut > 0 {
		kept = fmt.Sprintf("[... %d bytes cut]\n", cut) + kept
	}
	return kept
}
