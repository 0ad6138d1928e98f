package deploy

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// A report records one event with the engine's text, bounded, and
// changes nothing else; a malformed one is refused and changes nothing.
func TestReport(t *testing.T) {
	long := strings.Repeat("é", MaxReportText) // 2 bytes each
	tests := []struct {
		name    string
		r       Report
		want    error
		wantMsg string
	}{
		{"preflight", Report{ID: "d1", Kind: EvPreflight, Message: "2 hosts ready"}, nil, "2 hosts ready"},
		{"probe of a host", Report{ID: "d1", Kind: EvProbe, Host: "a", Error: "connection refused"}, nil, ""},
		{"analysis start", Report{ID: "d1", Kind: EvAnalysisStart, Batch: 2, Message: "watching"}, nil, "watching"},
		{"long text is cut", Report{ID: "d1", Kind: EvWarning, Message: long}, nil, long[:MaxReportText-4] + " …"},
		{"not a report kind", Report{ID: "d1", Kind: EvState}, ErrBadCommand, ""},
		{"unknown host", Report{ID: "d1", Kind: EvNote, Host: "zz"}, ErrUnknownHost, ""},
		{"batch out of range", Report{ID: "d1", Kind: EvAnalysisStart, Batch: 3}, ErrBadCommand, ""},
		{"unknown deployment", Report{ID: "nope", Kind: EvNote}, ErrUnknownDeployment, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := gatedLedger(t, KindDeploy, false)
			before := l.Deployments["d1"].Clone()
			n := len(l.Events)
			tc.r.At = time.Unix(200, 0)
			err := l.Apply(&tc.r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Apply: %v, want %v", err, tc.want)
			}
			if d := l.Deployments["d1"]; d.Updated != before.Updated || d.State != before.State {
				t.Errorf("a report changed the deployment: %+v", d)
			}
			if tc.want != nil {
				if len(l.Events) != n {
					t.Errorf("a refused report recorded %d events", len(l.Events)-n)
				}
				return
			}
			if len(l.Events) != n+1 {
				t.Fatalf("%d events recorded, want 1", len(l.Events)-n)
			}
			ev := l.Events[n]
			if ev.Kind != tc.r.Kind || ev.Host != tc.r.Host || ev.Message != tc.wantMsg || ev.Batch != tc.r.Batch || !ev.Time.Equal(tc.r.At) {
				t.Errorf("event %+v", ev)
			}
			if len(ev.Message) > MaxReportText || !utf8.ValidString(ev.Message) {
				t.Errorf("message of %d bytes (valid UTF-8: %v)", len(ev.Message), utf8.ValidString(ev.Message))
			}
		})
	}
	// An ended deployment takes no more reports.
	l := gatedLedger(t, KindDeploy, false)
	if err := l.Apply(&SetState{ID: "d1", State: StateAborted, At: time.Unix(300, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Apply(&Report{ID: "d1", Kind: EvNote, At: time.Unix(301, 0)}); !errors.Is(err, ErrTerminal) {
		t.Errorf("report on an ended deployment: %v, want ErrTerminal", err)
	}
}
