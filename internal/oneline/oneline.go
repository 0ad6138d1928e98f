// Package oneline shortens a message or a command to one line that fits a
// label, a table cell or an HTTP header.
package oneline

import (
	"strings"
	"unicode/utf8"
)

// First is s's first non-blank line, trimmed, followed by " ..." when more
// lines follow; control characters become spaces (so a tab cannot shift a
// table's columns nor a byte break a header), and a line longer than limit
// runes is cut to limit, ending in "...". A limit below 4 is taken as 4.
func First(s string, limit int) string {
	limit = max(limit, 4)
	s = strings.TrimSpace(s)
	more := false
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s, more = strings.TrimSpace(s[:i]), true
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	if more {
		s += " ..."
	}
	if utf8.RuneCountInString(s) > limit {
		s = string([]rune(s)[:limit-3]) + "..."
	}
	return s
}
