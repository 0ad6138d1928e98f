package orchestrator

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/tail"
)

// logFlushEvery is how often the output of running commands is recorded:
// one Apply per interval for the whole run, however many hosts print, so
// that `drover logs --follow` sees lines within about this delay.
const logFlushEvery = 500 * time.Millisecond

// logFlushTimeout bounds the flush of a failed command's output.
const logFlushTimeout = 5 * time.Second

// logbook collects the run's command output and records it through the
// store (deploy.AppendLog) in batches: every logFlushEvery, and at once
// before a failure or a change of the deployment's state is recorded, so
// that what explains a failure is in the store before the failure is.
// Recording output is best effort: a refused append never stops a
// deployment (the stage records that follow it fail on their own).
type logbook struct {
	store Store
	id    string
	now   func() time.Time

	mu      sync.Mutex
	pending []deploy.LogChunk
	bytes   map[logKey]int // pending text per chunk and stream
	index   map[logKey]int // chunk of a key in pending

	flushing sync.Mutex // flushes in order, one at a time
}

type logKey struct {
	host, command string
	stage         deploy.Stage
	phase         deploy.Phase
	stream        deploy.Stream
}

func newLogbook(s Store, id string, now func() time.Time) *logbook {
	return &logbook{store: s, id: id, now: now, bytes: map[logKey]int{}, index: map[logKey]int{}}
}

// add queues one line. Pending lines of one command's stream are bounded
// like the store bounds them (deploy.MaxLogStreamBytes): older ones that
// the store would drop anyway are dropped here, so a chatty command
// cannot flood the replicated log between two flushes.
func (b *logbook) add(host string, st deploy.Stage, ph deploy.Phase, command string, ln deploy.LogLine) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := logKey{host: host, command: command, stage: st, phase: ph}
	i, ok := b.index[k]
	if !ok {
		i = len(b.pending)
		b.index[k] = i
		b.pending = append(b.pending, deploy.LogChunk{Host: host, Stage: st, Phase: ph, Command: command})
	}
	ch := &b.pending[i]
	ch.Lines = append(ch.Lines, ln)
	sk := k
	sk.stream = ln.Stream
	b.bytes[sk] += len(ln.Text)
	for b.bytes[sk] > deploy.MaxLogStreamBytes {
		for j, old := range ch.Lines {
			if old.Stream == ln.Stream {
				b.bytes[sk] -= len(old.Text)
				ch.Lines = append(ch.Lines[:j:j], ch.Lines[j+1:]...)
				break
			}
		}
	}
}

// flush records the pending lines, in commands of at most
// deploy.MaxLogAppendLines lines.
func (b *logbook) flush(ctx context.Context) {
	b.flushing.Lock()
	defer b.flushing.Unlock()
	b.mu.Lock()
	chunks := b.pending
	b.pending, b.bytes, b.index = nil, map[logKey]int{}, map[logKey]int{}
	b.mu.Unlock()
	var cmd *deploy.AppendLog
	n := 0
	send := func() {
		if cmd != nil && len(cmd.Chunks) > 0 {
			cmd.At = b.now().UTC()
			_ = b.store.Apply(ctx, cmd) // best effort, see logbook
		}
		cmd, n = &deploy.AppendLog{ID: b.id}, 0
	}
	send()
	for _, ch := range chunks {
		for len(ch.Lines) > 0 {
			room := deploy.MaxLogAppendLines - n
			if room == 0 {
				send()
				continue
			}
			part := ch
			part.Lines = ch.Lines[:min(room, len(ch.Lines))]
			ch.Lines = ch.Lines[len(part.Lines):]
			cmd.Chunks = append(cmd.Chunks, part)
			n += len(part.Lines)
		}
	}
	send()
}

// loop flushes every logFlushEvery until ctx ends.
func (b *logbook) loop(ctx context.Context) {
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.flush(ctx)
		}
	}
}

// capture is where one remote command's output goes: stdout through
// Write, stderr through Stderr() (transports that can tell the streams
// apart look for that method; the others write both to Write). Each
// complete line is stamped with the clock, redacted, queued in the
// logbook (unless quiet: drover's own probes, recorded only when they
// fail) and remembered among the last few for a failure message.
type capture struct {
	book    *logbook
	host    string
	stage   deploy.Stage
	phase   deploy.Phase
	command string
	redact  func(string) string
	now     func() time.Time
	quiet   bool

	mu     sync.Mutex
	out    *tail.Buffer // stdout as it came, for the callers that parse it
	part   map[deploy.Stream][]byte
	recent []deploy.LogLine // the last maxRecordedLines lines
}

func (r *run) capture(host string, st deploy.Stage, ph deploy.Phase, command string, quiet bool) *capture {
	return &capture{book: r.book, host: host, stage: st, phase: ph, command: r.redact(command), redact: r.redact, now: r.e.d.Now,
		quiet: quiet, out: tail.New(maxOutput), part: map[deploy.Stream][]byte{}}
}

func (c *capture) Write(p []byte) (int, error) { return c.write(deploy.Stdout, p) }

// Stderr is the writer of the command's stderr.
func (c *capture) Stderr() io.Writer { return stderrOf{c} }

type stderrOf struct{ c *capture }

func (s stderrOf) Write(p []byte) (int, error) { return s.c.write(deploy.Stderr, p) }

func (c *capture) write(stream deploy.Stream, p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if stream == deploy.Stdout {
		_, _ = c.out.Write(p)
	}
	buf := append(c.part[stream], p...)
	for {
		i := strings.IndexByte(string(buf), '\n')
		if i < 0 {
			break
		}
		c.line(stream, string(buf[:i]))
		buf = buf[i+1:]
	}
	// A line that never ends is recorded in pieces.
	for len(buf) > deploy.MaxLogLineBytes {
		c.line(stream, string(buf[:deploy.MaxLogLineBytes]))
		buf = buf[deploy.MaxLogLineBytes:]
	}
	c.part[stream] = append(c.part[stream][:0], buf...)
	return len(p), nil
}

// line records one line; c.mu is held.
func (c *capture) line(stream deploy.Stream, text string) {
	ln := deploy.LogLine{At: c.now().UTC(), Stream: stream, Text: c.redact(strings.TrimSuffix(text, "\r"))}
	c.recent = append(c.recent, ln)
	if len(c.recent) > maxRecordedLines {
		c.recent = c.recent[len(c.recent)-maxRecordedLines:]
	}
	if !c.quiet {
		c.book.add(c.host, c.stage, c.phase, c.command, ln)
	}
}

// end records what is left of unfinished lines. failed: a quiet
// command's last lines are recorded after all.
func (c *capture) end(failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range []deploy.Stream{deploy.Stdout, deploy.Stderr} {
		if len(c.part[st]) > 0 {
			c.line(st, string(c.part[st]))
			c.part[st] = nil
		}
	}
	if failed && c.quiet {
		for _, ln := range c.recent {
			c.book.add(c.host, c.stage, c.phase, c.command, ln)
		}
	}
}

// stdout is the command's stdout (its last maxOutput bytes).
func (c *capture) stdout() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// lastLines are the command's last lines with their clock times (UTC,
// to the millisecond) and streams, for a failure message.
func (c *capture) lastLines() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, ln := range c.recent {
		fmt.Fprintf(&b, "%s %-6s %s\n", ln.At.UTC().Format("15:04:05.000Z"), ln.Stream, ln.Text)
	}
	return b.String()
}

// secretValues are the values, in this process's environment, of the
// variables the plan names in secrets: (at least 4 characters, shorter
// ones would blank ordinary words). Output that prints a secret without
// its name (a URL, a header) has it blanked too.
func secretValues(names []string) []string {
	var vals []string
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok && len(v) >= 4 {
			vals = append(vals, v)
		}
	}
	return vals
}

// redact blanks the plan's secrets in s: assignments to a secret name,
// and the secret values this process knows.
func (r *run) redact(s string) string {
	s = redacted(s, r.plan.Secrets)
	for _, v := range r.secretVals {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	return s
}
