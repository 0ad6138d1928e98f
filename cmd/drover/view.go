package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/orchestrator"
	"github.com/drover-dev/drover/raftstore"
	"golang.org/x/term"
)

// view renders a deployment's progress: a live table on a terminal, one
// line per event otherwise, or JSON lines.
type view struct {
	mu   sync.Mutex
	w    io.Writer
	mode string // live, text, json
	// start is when the deployment was recorded (its Created), or this
	// view's creation until begin knows it: the text view stamps each
	// event with its own time since then, not with when it arrived.
	start time.Time

	// live table state
	order   []string
	batchOf map[string]int
	rows    map[string]*row
	drawn   int
	done    chan struct{}
	stopped bool
}

type row struct {
	stage   raftstore.Stage
	phase   raftstore.Phase
	version string
	since   time.Time     // the current stage began
	started time.Time     // the host's first stage in this run began
	took    time.Duration // from started to done
	err     string
}

func newView(w io.Writer, mode string) (*view, error) {
	switch mode {
	case "auto":
		mode = "text"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "live"
		}
	case "text", "json":
	case "live":
	default:
		return nil, fmt.Errorf("--output %q: want auto, text or json", mode)
	}
	return &view{w: w, mode: mode, start: time.Now(), rows: map[string]*row{}, batchOf: map[string]int{}}, nil
}

// begin lays out the hosts of d and starts redrawing in live mode.
func (v *view) begin(d raftstore.Deployment) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.order, v.rows, v.batchOf = nil, map[string]*row{}, map[string]int{}
	if !d.Created.IsZero() {
		v.start = d.Created
	}
	for i, b := range d.Batches {
		for _, h := range b {
			hp := d.Hosts[h]
			v.order = append(v.order, h)
			v.batchOf[h] = i + 1
			since := hp.Since
			if since.IsZero() {
				since = time.Now()
			}
			v.rows[h] = &row{stage: hp.Stage, phase: hp.Phase, version: hp.Target, since: since}
		}
	}
	if v.mode == "json" {
		return
	}
	fmt.Fprintf(v.w, "deployment %s: %s %s to %d hosts in %d batches\n", d.ID, d.Name, d.Version, len(v.order), len(d.Batches))
	if v.mode == "live" {
		v.done = make(chan struct{})
		go v.tick(v.done)
	}
}

func (v *view) tick(done chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			v.mu.Lock()
			v.redraw()
			v.mu.Unlock()
		}
	}
}

// end stops redrawing and prints the outcome.
func (v *view) end(d raftstore.Deployment) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.done != nil && !v.stopped {
		close(v.done)
		v.stopped = true
		v.redraw()
	}
	if v.mode == "json" {
		return
	}
	counts := map[string][]string{}
	for _, h := range d.HostNames() {
		hp := d.Hosts[h]
		key := string(hp.Stage)
		if hp.Stage == raftstore.StagePending {
			key = "not started"
		} else if hp.Stage == raftstore.StageDone && hp.Phase == raftstore.PhaseRollback {
			key = "rolled back to " + hp.Target
		} else if hp.Stage == raftstore.StageDone {
			key = "on " + hp.Target
		}
		counts[key] = append(counts[key], h)
	}
	// The deployment's own record says how long it took, whatever this
	// watcher saw of it.
	fmt.Fprintf(v.w, "deployment %s %s after %s\n", d.ID, strings.ReplaceAll(string(d.State), "_", " "), duration(d))
	for k, hs := range counts {
		fmt.Fprintf(v.w, "  %-22s %d: %s\n", k, len(hs), strings.Join(hs, " "))
	}
	if d.Error != "" {
		fmt.Fprintf(v.w, "  reason: %s\n", d.Error)
	}
}

// note prints an operator-facing message.
func (v *view) note(msg string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mode == "json" {
		json.NewEncoder(v.w).Encode(map[string]string{"kind": "note", "message": msg})
		return
	}
	v.clear()
	fmt.Fprintln(v.w, msg)
	v.redraw()
}

// event is the engine's Events callback.
func (v *view) event(ev orchestrator.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if r := v.rows[ev.Host]; r != nil {
		switch ev.Kind {
		case orchestrator.EventStage:
			r.stage, r.phase, r.version, r.since = ev.Stage, ev.Phase, ev.Version, when(ev)
			if r.started.IsZero() {
				r.started = r.since
			}
		case orchestrator.EventHostDone:
			r.stage, r.phase, r.took = raftstore.StageDone, ev.Phase, when(ev).Sub(r.started)
		case orchestrator.EventHostFailed:
			r.stage, r.err = raftstore.StageFailed, ev.Error
		case orchestrator.EventHostSkipped:
			r.stage = raftstore.StageSkipped
		}
	}
	switch v.mode {
	case "json":
		json.NewEncoder(v.w).Encode(ev)
	case "text":
		fmt.Fprintln(v.w, v.line(ev))
		if ev.Output != "" {
			fmt.Fprintln(v.w, indent(ev.Output, "    | "))
		}
	case "live":
		// The table shows stages; only what the table cannot show is printed.
		switch ev.Kind {
		case orchestrator.EventHostFailed, orchestrator.EventRollback, orchestrator.EventWarning,
			orchestrator.EventNote, orchestrator.EventPaused, orchestrator.EventPreflight:
			v.clear()
			fmt.Fprintln(v.w, v.line(ev))
			if ev.Output != "" {
				fmt.Fprintln(v.w, indent(ev.Output, "    | "))
			}
			v.redraw()
		}
	}
}

// when is the time ev happened: its own stamp (from the engine, or from
// the replicated log for a cluster deploy), now when it has none.
func when(ev orchestrator.Event) time.Time {
	if ev.Time.IsZero() {
		return time.Now()
	}
	return ev.Time
}

func (v *view) line(ev orchestrator.Event) string {
	ts := fmt.Sprintf("[%6.2fs]", when(ev).Sub(v.start).Seconds())
	phase := ""
	if ev.Phase == raftstore.PhaseRollback {
		phase = " (rollback)"
	}
	if ev.Kind == orchestrator.EventStage && ev.Message != "" {
		phase += " (" + ev.Message + ")"
	}
	switch ev.Kind {
	case orchestrator.EventStarted:
		return fmt.Sprintf("%s started %s", ts, ev.Deployment)
	case orchestrator.EventPreflight:
		return fmt.Sprintf("%s preflight ok: %s", ts, ev.Message)
	case orchestrator.EventBatch:
		return fmt.Sprintf("%s batch %d/%d%s: %s", ts, ev.Batch, ev.Batches, phase, strings.Join(ev.Hosts, " "))
	case orchestrator.EventStage:
		return fmt.Sprintf("%s %-10s %s%s -> %s", ts, ev.Host, ev.Stage, phase, ev.Version)
	case orchestrator.EventHostDone:
		return fmt.Sprintf("%s %-10s done%s: on %s", ts, ev.Host, phase, ev.Version)
	case orchestrator.EventHostSkipped:
		return fmt.Sprintf("%s %-10s skipped: %s", ts, ev.Host, ev.Message)
	case orchestrator.EventHostFailed:
		return fmt.Sprintf("%s %-10s FAILED%s: %s", ts, ev.Host, phase, ev.Error)
	case orchestrator.EventRollback:
		return fmt.Sprintf("%s rolling back: %s", ts, ev.Message)
	case orchestrator.EventWarning:
		if ev.Error == "" {
			return fmt.Sprintf("%s warning: %s %s", ts, ev.Host, ev.Message)
		}
		return fmt.Sprintf("%s warning: %s %s: %s", ts, ev.Host, ev.Message, ev.Error)
	case orchestrator.EventNote:
		return fmt.Sprintf("%s %-10s %s", ts, ev.Host, ev.Message)
	case orchestrator.EventPaused:
		return fmt.Sprintf("%s %s", ts, ev.Message)
	case orchestrator.EventFinished:
		if ev.Error != "" {
			return fmt.Sprintf("%s finished: %s: %s", ts, ev.State, ev.Error)
		}
		return fmt.Sprintf("%s finished: %s", ts, ev.State)
	}
	return fmt.Sprintf("%s %s %s %s", ts, ev.Kind, ev.Host, ev.Message)
}

// clear erases the live table so that a message can be printed above it.
func (v *view) clear() {
	if v.mode != "live" || v.drawn == 0 {
		return
	}
	fmt.Fprintf(v.w, "\x1b[%dA\x1b[J", v.drawn)
	v.drawn = 0
}

func (v *view) redraw() {
	if v.mode != "live" || len(v.order) == 0 {
		return
	}
	v.clear()
	var b strings.Builder
	for _, h := range v.order {
		r := v.rows[h]
		el := time.Since(r.since)
		if r.stage.Settled() {
			el = r.took
		}
		mark := "  "
		switch {
		case r.stage == raftstore.StageDone:
			mark = "✓ "
		case r.stage == raftstore.StageFailed:
			mark = "✗ "
		case !r.stage.Settled():
			mark = "» "
		}
		stage := string(r.stage)
		if r.phase == raftstore.PhaseRollback {
			stage += " (rollback)"
		}
		fmt.Fprintf(&b, "%sbatch %-2d %-12s %-20s %-10s %6.2fs\n", mark, v.batchOf[h], h, stage, r.version, el.Seconds())
	}
	io.WriteString(v.w, b.String())
	v.drawn = len(v.order)
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}
