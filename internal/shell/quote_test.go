package shell

import (
	"os/exec"
	"testing"
)

func TestQuote(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"plain", "plain"},
		{"/srv/app/releases/2.0.1", "/srv/app/releases/2.0.1"},
		{"a=b,c", "'a=b,c'"},
		{"key=v@host:1%+", "key=v@host:1%+"},
		{"", "''"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"''", `''\'''\'''`},
		{`"q"`, `'"q"'`},
		{"line1\nline2", "'line1\nline2'"},
		{"tab\there", "'tab\there'"},
		{"$(reboot)", "'$(reboot)'"},
		{"`id`", "'`id`'"},
		{"${HOME}", "'${HOME}'"},
		{"a;b|c&d", "'a;b|c&d'"},
		{"*.tar.gz", "'*.tar.gz'"},
		{"~root", "'~root'"},
		{"back\\slash", "'back\\slash'"},
		{"déjà", "'déjà'"},
		{"-n", "-n"},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestQuoteRoundTrip: every shell at hand reads the quoted word back as
// exactly the input, whatever it holds.
func TestQuoteRoundTrip(t *testing.T) {
	words := []string{"plain", "", "it's", "a b", `$(x) "q" \n`, "line1\nline2\n", "'", "''", "\\'", "!event", "#comment", "a\x01b", "déjà vu", "-e"}
	found := 0
	for _, sh := range []string{"sh", "dash", "bash", "ksh", "zsh"} {
		path, err := exec.LookPath(sh)
		if err != nil {
			continue
		}
		found++
		for _, w := range words {
			out, err := exec.Command(path, "-c", "printf %s "+Quote(w)).Output()
			if err != nil || string(out) != w {
				t.Errorf("%s: printf %%s %s gives %q, %v; want %q", sh, Quote(w), out, err, w)
			}
		}
	}
	if found == 0 {
		t.Fatal("no POSIX shell found (sh is required)")
	}
}
