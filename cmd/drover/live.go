package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/oneline"
	"github.com/drover-dev/drover/plans"
)

// The live view's frame: what the terminal shows under the event lines,
// redrawn in place. It never has more lines than the terminal has rows
// (less one for the cursor) nor lines wider than it has columns, because
// a line that wraps or a frame that scrolls cannot be erased by moving the
// cursor up: the old frame would stay in the scrollback.

// liveSummary is the frame's first line's data.
type liveSummary struct {
	batch, batches int // the batch running now (0: none yet), of how many
	from, to       string
	start          time.Time // the deployment's start
	firstBatch     time.Time // when batch 1 began, for the ETA
	rollingBack    bool
	canary         float64 // the canary's share of the traffic (%) while it is set
}

const (
	ansiGreen  = "\x1b[32m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiDim    = "\x1b[2m"
	ansiReset  = "\x1b[0m"
)

// liveFrame renders the hosts (in batch order) into at most height-1 lines
// of fewer than width columns. A fleet that fits is shown whole; a larger
// one shows the hosts at work in full and the others as counts.
func liveFrame(sum liveSummary, order []string, batchOf map[string]int, rows map[string]*row, now time.Time, width, height int, color bool) []string {
	width, height = max(width, 20), max(height, 4)
	maxLines := height - 1
	var done, failed, skipped, waiting, active []string
	for _, h := range order {
		switch r := rows[h]; {
		case r.stage == deploy.StageDone:
			done = append(done, h)
		case r.stage == deploy.StageFailed:
			failed = append(failed, h)
		case r.stage == deploy.StageSkipped:
			skipped = append(skipped, h)
		case r.stage == deploy.StagePending:
			waiting = append(waiting, h)
		default:
			active = append(active, h)
		}
	}
	lines := []string{summaryLine(sum, len(done)+len(skipped), len(failed), len(order), now)}

	// Column width of host names: the longest shown, within reason.
	nameW := 4
	for _, h := range order {
		nameW = max(nameW, min(utf8.RuneCountInString(h), 24))
	}
	hostLine := func(h string) string {
		r := rows[h]
		el := now.Sub(r.since)
		if r.stage.Settled() {
			el = r.took
		}
		stage := string(r.stage)
		if r.phase == deploy.PhaseRollback {
			stage += " (rollback)"
		}
		line := fmt.Sprintf("%sbatch %-2d %-*s %-20s %-10s %7s", mark(r.stage), batchOf[h], nameW, cut(h, nameW), stage, r.version, humanDuration(el))
		switch {
		case r.err != "":
			line += "  " + oneline.First(r.err, 100)
		case r.stage == deploy.StageVerify && r.probe != "":
			line += "  last probe: " + oneline.First(r.probe, 100)
		}
		return line
	}

	if 1+len(order) <= maxLines {
		for _, h := range order {
			lines = append(lines, hostLine(h))
		}
	} else {
		// Hosts at work first, then the failed ones; the rest as counts.
		shown := append(append([]string(nil), active...), failed...)
		room := maxLines - 2 // the summary and the counts line
		if len(shown) > room {
			more := len(shown) - (room - 1)
			shown = shown[:room-1]
			for _, h := range shown {
				lines = append(lines, hostLine(h))
			}
			lines = append(lines, fmt.Sprintf("  … %d more at work or failed", more))
		} else {
			for _, h := range shown {
				lines = append(lines, hostLine(h))
			}
		}
		var counts []string
		if n := len(done); n > 0 {
			counts = append(counts, fmt.Sprintf("✓ %d done", n))
		}
		if n := len(skipped); n > 0 {
			counts = append(counts, fmt.Sprintf("%d already on %s", n, sum.to))
		}
		if n := len(waiting); n > 0 {
			counts = append(counts, fmt.Sprintf("%d waiting", n))
		}
		if n := len(failed); n > 0 {
			counts = append(counts, fmt.Sprintf("✗ %d failed", n))
		}
		lines = append(lines, "  "+strings.Join(counts, " · "))
	}
	for i, l := range lines {
		lines[i] = paint(cut(l, width-1), color)
	}
	return lines
}

func summaryLine(s liveSummary, settled, failed, total int, now time.Time) string {
	parts := []string{}
	switch {
	case s.batch > 0 && s.rollingBack:
		parts = append(parts, fmt.Sprintf("rolling back, batch %d/%d", s.batch, s.batches))
	case s.batch > 0 && s.canary > 0:
		parts = append(parts, fmt.Sprintf("batch %d/%d: canary at %s%% of the traffic", s.batch, s.batches, plans.FormatShare(s.canary)))
	case s.batch > 0:
		parts = append(parts, fmt.Sprintf("batch %d/%d", s.batch, s.batches))
	default:
		parts = append(parts, "preflight")
	}
	parts = append(parts, fmt.Sprintf("%d/%d hosts done", settled, total))
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", failed))
	}
	if s.from != "" && s.from != s.to {
		parts = append(parts, s.from+" → "+s.to)
	} else {
		parts = append(parts, "→ "+s.to)
	}
	parts = append(parts, humanDuration(now.Sub(s.start)))
	// ETA from the pace of the batches so far (not while rolling back).
	if !s.rollingBack && s.batch > 1 && !s.firstBatch.IsZero() && s.batch <= s.batches && settled+failed < total {
		per := now.Sub(s.firstBatch) / time.Duration(s.batch-1)
		left := per*time.Duration(s.batches-s.batch+1) - now.Sub(s.firstBatch)%per
		parts = append(parts, "ETA "+humanDuration(max(left, 0)))
	}
	return strings.Join(parts, " · ")
}

func mark(st deploy.Stage) string {
	switch {
	case st == deploy.StageDone:
		return "✓ "
	case st == deploy.StageFailed:
		return "✗ "
	case st == deploy.StagePending, st.Settled():
		return "  "
	default:
		return "» "
	}
}

// paint colours a frame line's marks (after cutting: escapes take no
// columns).
func paint(l string, color bool) string {
	if !color {
		return l
	}
	switch {
	case strings.HasPrefix(l, "✓"):
		return ansiGreen + "✓" + ansiReset + l[len("✓"):]
	case strings.HasPrefix(l, "✗"):
		return ansiRed + "✗" + ansiReset + l[len("✗"):]
	case strings.HasPrefix(l, "»"):
		return ansiYellow + "»" + ansiReset + l[len("»"):]
	case strings.HasPrefix(l, "  ✓"), strings.HasPrefix(l, "  …"):
		return ansiDim + l + ansiReset
	}
	return l
}

// cut shortens s to at most n runes, marking the cut with "…".
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	if n <= 1 {
		return string(r[:n])
	}
	return string(r[:n-1]) + "…"
}

// mostCommon is the most frequent non-empty value (ties: the smallest), or "".
func mostCommon(vals []string) string {
	n := map[string]int{}
	for _, v := range vals {
		if v != "" {
			n[v]++
		}
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return n[keys[i]] > n[keys[j]] || n[keys[i]] == n[keys[j]] && keys[i] < keys[j] })
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}
