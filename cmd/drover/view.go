package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/orchestrator"
	"golang.org/x/term"
)

// view renders a deployment's progress: a live table on a terminal, one
// line per event otherwise, or JSON lines.
type view struct {
	mu   sync.Mutex
	w    io.Writer
	mode string // live, text, json
	id   string // the deployment's ID, once begin knows it
	// start is when the deployment was recorded (its Created), or this
	// view's creation until begin knows it: the text view stamps each
	// event with its own time since then, not with when it arrived.
	start time.Time

	// live table state
	order   []string
	batchOf map[string]int
	rows    map[string]*row
	sum     liveSummary
	drawn   int
	done    chan struct{}
	stopped bool
	// size is the terminal's columns and rows now (it may be resized).
	size  func() (width, height int)
	color bool
	// lines shows the recorded events (record) of the deployment begun.
	lines *lines
}

type row struct {
	stage   deploy.Stage
	phase   deploy.Phase
	version string
	since   time.Time     // the current stage began
	started time.Time     // the host's first stage in this run began
	took    time.Duration // from started to done
	err     string
	probe   string // the last health probe's result during verify ("ok" or why not)
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
		return nil, checkOutput(mode)
	}
	v := &view{w: w, mode: mode, start: time.Now(), rows: map[string]*row{}, batchOf: map[string]int{}, size: func() (int, int) { return 80, 24 }}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		v.size = func() (int, int) {
			if cols, rows, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 && rows > 0 {
				return cols, rows
			}
			return 80, 24
		}
		// https://no-color.org: any non-empty NO_COLOR turns colour off.
		v.color = os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	}
	return v, nil
}

// begin lays out the hosts of d and starts redrawing in live mode.
func (v *view) begin(d deploy.Deployment) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.order, v.rows, v.batchOf, v.id, v.lines = nil, map[string]*row{}, map[string]int{}, d.ID, newLines(d)
	if !d.Created.IsZero() {
		v.start = d.Created
	}
	v.sum = liveSummary{batches: len(d.Batches), from: fromVersion(d), to: d.Version, start: v.start}
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
func (v *view) end(d deploy.Deployment) {
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
		if hp.Stage == deploy.StagePending {
			key = "not started"
		} else if hp.Stage == deploy.StageDone && hp.Phase == deploy.PhaseRollback {
			key = "rolled back to " + hp.Target
		} else if hp.Stage == deploy.StageDone {
			key = "on " + hp.Target
		}
		counts[key] = append(counts[key], h)
	}
	// The deployment's own record says how long it took, whatever this
	// watcher saw of it.
	fmt.Fprintf(v.w, "deployment %s %s after %s\n", d.ID, strings.ReplaceAll(string(d.State), "_", " "), duration(d))
	for k, hs := range counts {
		fmt.Fprintf(v.w, "  %-22s %d: %s\n", k, len(hs), nameList(hs, 12))
	}
	// Why a deployment failed is the command's error (stderr), said once
	// there; a paused one's reason is not.
	if d.Error != "" && d.State == deploy.StatePaused {
		fmt.Fprintf(v.w, "  reason: %s\n", d.Error)
	}
}

// note prints an operator-facing message.
func (v *view) note(msg string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mode == "json" {
		// An event like the engine's, so that every line has the schema's
		// time and deployment ("" before the deployment exists).
		json.NewEncoder(v.w).Encode(orchestrator.Event{Time: time.Now().UTC(), Deployment: v.id, Kind: orchestrator.EventNote, Message: msg})
		return
	}
	v.clear()
	v.println(msg)
	v.redraw()
}

// event is the engine's Events callback.
func (v *view) event(ev orchestrator.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch ev.Kind {
	case orchestrator.EventBatch:
		v.sum.batch, v.sum.rollingBack = ev.Batch, ev.Phase == deploy.PhaseRollback
		if ev.Batches > 0 {
			v.sum.batches = ev.Batches
		}
		if ev.Batch == 1 && !v.sum.rollingBack {
			v.sum.firstBatch = when(ev)
		}
	case orchestrator.EventRollback:
		v.sum.rollingBack = true
	case orchestrator.EventCanary:
		v.sum.canary = ev.Share
	}
	if r := v.rows[ev.Host]; r != nil {
		switch ev.Kind {
		case orchestrator.EventStage:
			r.stage, r.phase, r.version, r.since, r.probe = ev.Stage, ev.Phase, ev.Version, when(ev), ""
			if r.started.IsZero() {
				r.started = r.since
			}
		case orchestrator.EventHostDone:
			r.stage, r.phase, r.took = deploy.StageDone, ev.Phase, when(ev).Sub(r.started)
		case orchestrator.EventHostFailed:
			r.stage, r.err = deploy.StageFailed, ev.Error
			if !r.started.IsZero() {
				r.took = when(ev).Sub(r.started)
			}
		case orchestrator.EventHostSkipped:
			r.stage = deploy.StageSkipped
		case orchestrator.EventProbe:
			// verify is not a recorded stage: its first probe says it began.
			if r.stage != deploy.StageVerify {
				r.stage, r.since = deploy.StageVerify, when(ev)
			}
			r.probe = ev.Message
			if ev.Error != "" {
				r.probe = ev.Error
			}
		}
	}
	if ev.Kind == orchestrator.EventProbe && v.mode != "json" {
		return // the live row shows it; one line per probe would drown the rest
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
			orchestrator.EventNote, orchestrator.EventPaused, orchestrator.EventPreflight,
			orchestrator.EventAnalysis, orchestrator.EventGate, orchestrator.EventCanary:
			v.clear()
			v.println(v.line(ev))
			if ev.Output != "" {
				v.println(indent(ev.Output, "    | "))
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
	if ev.Phase == deploy.PhaseRollback {
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
	case orchestrator.EventAnalysis:
		return fmt.Sprintf("%s analysis of batch %d: %s", ts, ev.Batch, ev.Message)
	case orchestrator.EventGate:
		if s := ev.Sample; s != nil {
			return fmt.Sprintf("%s gate %-8s %-12s %s", ts, s.Gate, s.Verdict, s)
		}
	case orchestrator.EventCanary:
		return fmt.Sprintf("%s canary: %s", ts, ev.Message)
	case orchestrator.EventFinished:
		// Without the error: the command's own error says it, once.
		return fmt.Sprintf("%s finished: %s", ts, ev.State)
	}
	return fmt.Sprintf("%s %s %s %s", ts, ev.Kind, ev.Host, ev.Message)
}

// clear moves the cursor back to the live frame's first line, so that a
// message and the next frame are written over it. Nothing is erased here:
// each line written over the frame erases the rest of its own line, and
// redraw erases what is left below. Erasing from the top of the screen
// would make tmux keep the old frame in its scrollback (scroll-on-clear).
func (v *view) clear() {
	if v.mode != "live" || v.drawn == 0 {
		return
	}
	fmt.Fprintf(v.w, "\x1b[%dA\r", v.drawn)
	v.drawn = 0
}

// println prints s; in live mode each line erases what the frame had there.
func (v *view) println(s string) {
	if v.mode != "live" {
		fmt.Fprintln(v.w, s)
		return
	}
	io.WriteString(v.w, strings.ReplaceAll(s, "\n", "\x1b[K\n")+"\x1b[K\n")
}

func (v *view) redraw() {
	if v.mode != "live" || len(v.order) == 0 {
		return
	}
	v.clear()
	width, height := v.size()
	lines := liveFrame(v.sum, v.order, v.batchOf, v.rows, time.Now(), width, height, v.color)
	// Each line erases the old frame's rest of the line; the end erases
	// the old frame's lines below the new one.
	io.WriteString(v.w, strings.Join(lines, "\x1b[K\n")+"\x1b[K\n\x1b[J")
	v.drawn = len(lines)
}

// nameList joins names, the first n of them when there are more.
func nameList(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, " ")
	}
	return fmt.Sprintf("%s ... and %d more", strings.Join(names[:n], " "), len(names)-n)
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
