package deploy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func logLedger(t *testing.T, ids ...string) *Ledger {
	t.Helper()
	l := NewLedger()
	for i, id := range ids {
		host := fmt.Sprintf("h%d", i)
		if err := l.Apply(&CreateDeployment{Deployment: Deployment{ID: id, Name: id, Version: "v1", Batches: [][]string{{host}}}}); err != nil {
			t.Fatal(err)
		}
	}
	return &l
}

func lines(stream Stream, n, size int) []LogLine {
	out := make([]LogLine, n)
	for i := range out {
		text := fmt.Sprintf("%s line %d ", stream, i)
		out[i] = LogLine{At: time.Unix(int64(i), 0), Stream: stream, Text: text + strings.Repeat("x", max(0, size-len(text)))}
	}
	return out
}

func TestAppendLogBounds(t *testing.T) {
	tests := []struct {
		name     string
		chunks   []LogChunk
		want     func(t *testing.T, p LogPage)
		wantKept int // bytes kept by the deployment's log
	}{
		{
			name:   "both streams kept apart, in order, with the command",
			chunks: []LogChunk{{Host: "h0", Stage: StageActivate, Command: "restart", Lines: append(lines(Stdout, 2, 10), lines(Stderr, 1, 10)...)}},
			want: func(t *testing.T, p LogPage) {
				if len(p.Lines) != 3 || p.Lines[2].Stream != Stderr || p.Lines[0].Command != "restart" || p.Lines[0].Host != "h0" || p.Next != 3 {
					t.Errorf("page %+v", p)
				}
			},
			wantKept: 42,
		},
		{
			name:   "each stream keeps its last 64 KiB, the other untouched",
			chunks: []LogChunk{{Host: "h0", Stage: StageActivate, Lines: append(lines(Stdout, 200, 1000), lines(Stderr, 3, 100)...)}},
			want: func(t *testing.T, p LogPage) {
				var out, errs int
				for _, ln := range p.Lines {
					if ln.Stream == Stdout {
						out += len(ln.Text)
					} else {
						errs++
					}
				}
				if out > MaxLogStreamBytes || out < MaxLogStreamBytes-1000 || errs != 3 {
					t.Errorf("stdout %d bytes, %d stderr lines", out, errs)
				}
				if !strings.HasPrefix(p.Lines[len(p.Lines)-4].Text, "stdout line 199") || p.Cut[Stdout] != 200*1000-out || p.Cut[Stderr] != 0 {
					t.Errorf("kept the wrong end: last stdout %q, cut %v", p.Lines[len(p.Lines)-4].Text, p.Cut)
				}
			},
			wantKept: 65*1000 + 300,
		},
		{
			name:   "a long line is cut",
			chunks: []LogChunk{{Host: "h0", Stage: StageInstall, Lines: lines(Stderr, 1, 10000)}},
			want: func(t *testing.T, p LogPage) {
				if n := len(p.Lines[0].Text); n > MaxLogLineBytes+20 || !strings.HasSuffix(p.Lines[0].Text, "[line cut]") {
					t.Errorf("line of %d bytes: %q", n, p.Lines[0].Text[n-20:])
				}
			},
			wantKept: MaxLogLineBytes + len(" [line cut]"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := logLedger(t, "d1")
			if err := l.Apply(&AppendLog{ID: "d1", Chunks: tc.chunks}); err != nil {
				t.Fatal(err)
			}
			p, err := l.LogsOf(LogQuery{ID: "d1"})
			if err != nil {
				t.Fatal(err)
			}
			tc.want(t, p)
			if got := l.Logs["d1"].Bytes; got != tc.wantKept {
				t.Errorf("deployment keeps %d bytes, want %d", got, tc.wantKept)
			}
		})
	}
}

func TestAppendLogDeploymentBound(t *testing.T) {
	l := NewLedger()
	var hosts []string
	for i := range 100 {
		hosts = append(hosts, fmt.Sprintf("h%d", i))
	}
	if err := l.Apply(&CreateDeployment{Deployment: Deployment{ID: "d1", Name: "web", Version: "v1", Batches: [][]string{hosts}}}); err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		for _, st := range []Stream{Stdout, Stderr} {
			if err := l.Apply(&AppendLog{ID: "d1", Chunks: []LogChunk{{Host: h, Stage: StageActivate, Lines: lines(st, 64, 1000)}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	dl := l.Logs["d1"]
	total := 0
	for _, s := range dl.Stages {
		for _, ln := range s.Lines {
			total += len(ln.Text)
		}
	}
	if dl.Bytes > MaxDeploymentLogBytes || total != dl.Bytes {
		t.Fatalf("deployment keeps %d bytes (counted %d), bound %d", dl.Bytes, total, MaxDeploymentLogBytes)
	}
	// The largest streams shrink first: every host keeps the end of
	// both its streams, about an even share each.
	share := MaxDeploymentLogBytes / 200
	for _, s := range dl.Stages {
		for _, st := range []Stream{Stdout, Stderr} {
			if s.Bytes[st] < share-2*MaxLogLineBytes {
				t.Errorf("%s %s keeps %d bytes, less than its share %d", s.Host, st, s.Bytes[st], share)
			}
		}
		if n := len(s.Lines); n == 0 || !strings.HasPrefix(s.Lines[n-1].Text, "stderr line 63 ") {
			t.Errorf("%s lost its last line", s.Host)
		}
	}
}

func TestAppendLogRefusesAndKeepsNewest(t *testing.T) {
	ids := make([]string, KeepLogs+2)
	for i := range ids {
		ids[i] = fmt.Sprintf("d%02d", i)
	}
	l := logLedger(t, ids...)
	for i, id := range ids {
		if err := l.Apply(&AppendLog{ID: id, Chunks: []LogChunk{{Host: fmt.Sprintf("h%d", i), Stage: StageDrain, Lines: lines(Stdout, 1, 5)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.Logs) != KeepLogs || l.Logs[ids[0]] != nil || l.Logs[ids[1]] != nil || l.Logs[ids[len(ids)-1]] == nil {
		t.Errorf("%d logs kept, want the %d newest", len(l.Logs), KeepLogs)
	}
	for name, c := range map[string]*AppendLog{
		"unknown deployment": {ID: "nope"},
		"unknown host":       {ID: ids[5], Chunks: []LogChunk{{Host: "h0", Lines: lines(Stdout, 1, 5)}}},
		"bad stream":         {ID: ids[5], Chunks: []LogChunk{{Host: "h5", Lines: []LogLine{{Stream: "both"}}}}},
		"too many lines":     {ID: ids[5], Chunks: []LogChunk{{Host: "h5", Lines: lines(Stdout, MaxLogAppendLines+1, 1)}}},
	} {
		before := l.Logs[ids[5]].Seq
		if err := l.Apply(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if l.Logs[ids[5]].Seq != before {
			t.Errorf("%s: a refused append changed the log", name)
		}
	}
	if _, err := l.LogsOf(LogQuery{ID: "nope"}); !errors.Is(err, ErrUnknownDeployment) {
		t.Errorf("logs of an unknown deployment: %v", err)
	}
}

func TestLogsOfFilters(t *testing.T) {
	l := NewLedger()
	if err := l.Apply(&CreateDeployment{Deployment: Deployment{ID: "d1", Name: "web", Version: "v1", Batches: [][]string{{"a", "b"}}}}); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []LogChunk{
		{Host: "a", Stage: StageInstall, Lines: lines(Stdout, 1, 5)},
		{Host: "b", Stage: StageActivate, Lines: lines(Stderr, 1, 5)},
		{Host: "a", Stage: StageActivate, Lines: lines(Stdout, 2, 5)},
	} {
		if err := l.Apply(&AppendLog{ID: "d1", Chunks: []LogChunk{ch}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		q    LogQuery
		want []uint64
	}{
		{LogQuery{ID: "d1"}, []uint64{1, 2, 3, 4}},
		{LogQuery{ID: "d1", Host: "a"}, []uint64{1, 3, 4}},
		{LogQuery{ID: "d1", Stage: StageActivate}, []uint64{2, 3, 4}},
		{LogQuery{ID: "d1", Host: "a", Stage: StageActivate, After: 3}, []uint64{4}},
	} {
		p, err := l.LogsOf(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, ln := range p.Lines {
			got = append(got, ln.Seq)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%+v: lines %v, want %v", tc.q, got, tc.want)
		}
	}
}
