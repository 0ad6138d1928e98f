package oneline

import (
	"strings"
	"testing"
)

func TestFirst(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"", 10, ""},
		{"short", 10, "short"},
		{"  padded \n", 10, "padded"},
		{"one\ntwo", 20, "one ..."},
		{"one\r\ntwo", 20, "one ..."},
		{"a\tb\x00c\x7fd", 20, "a b c d"},
		{"0123456789abc", 10, "0123456..."},
		{"0123456789", 10, "0123456789"},
		{strings.Repeat("é", 12), 10, strings.Repeat("é", 7) + "..."},
		{"bad \xff byte", 20, "bad   byte"},
		{"long first line\nsecond", 10, "long fi..."},
		{"abcdef", 1, "a..."},
	}
	for _, tt := range tests {
		if got := First(tt.in, tt.max); got != tt.want {
			t.Errorf("First(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}
