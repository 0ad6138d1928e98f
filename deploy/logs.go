package deploy

import (
	"cmp"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// Stream says which output of a command a log line came from.
type Stream string

// The two streams of a command.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// Bounds of the replicated command logs. Every node keeps them and every
// snapshot carries them, so they are bounded three ways: per host, stage
// and stream (the end of a chatty restart script is what explains a
// failure), per deployment, and by how many deployments keep theirs.
const (
	// MaxLogStreamBytes bounds the text kept per host, stage and stream;
	// older lines go first.
	MaxLogStreamBytes = 64 << 10
	// MaxLogLineBytes bounds one line; a longer one is cut.
	MaxLogLineBytes = 4 << 10
	// MaxDeploymentLogBytes bounds one deployment's log; beyond it the
	// oldest lines of its largest stream go first.
	MaxDeploymentLogBytes = 4 << 20
	// KeepLogs is how many deployments keep their log, the newest ones.
	KeepLogs = 20
	// MaxLogAppendLines bounds the lines of one AppendLog command.
	MaxLogAppendLines = 4096
)

// LogLine is one line of a remote command's output, as recorded: the
// engine's clock when the line ended, the stream, the command it came from
// (the engine's description of it, with secrets blanked) and the text
// (secrets blanked, no newline).
type LogLine struct {
	// Seq numbers the lines of a deployment in the order they were
	// recorded, from 1: a follower asks for those after the last it saw.
	Seq     uint64    `json:"seq"`
	At      time.Time `json:"at"`
	Host    string    `json:"host,omitempty"`  // in answers; stored lines leave it to their StageLog
	Stage   Stage     `json:"stage,omitempty"` // likewise
	Phase   Phase     `json:"phase,omitempty"`
	Stream  Stream    `json:"stream"`
	Command string    `json:"command,omitempty"`
	Text    string    `json:"text"`
}

// StageLog is the output of one host's commands in one stage.
type StageLog struct {
	Host  string    `json:"host"`
	Stage Stage     `json:"stage"`
	Lines []LogLine `json:"lines"`
	// Bytes is the text kept per stream; Cut the bytes dropped from the
	// front of each stream to keep Bytes within MaxLogStreamBytes.
	Bytes map[Stream]int `json:"bytes,omitempty"`
	Cut   map[Stream]int `json:"cut,omitempty"`
}

// DeploymentLog is every recorded line of one deployment.
type DeploymentLog struct {
	Stages []*StageLog `json:"stages"`
	Seq    uint64      `json:"seq"`   // the last line's
	Bytes  int         `json:"bytes"` // text kept in all stages
}

// LogChunk is lines of one host's command in one stage.
type LogChunk struct {
	Host    string    `json:"host"`
	Stage   Stage     `json:"stage"`
	Phase   Phase     `json:"phase,omitempty"`
	Command string    `json:"command,omitempty"`
	Lines   []LogLine `json:"lines"` // At, Stream and Text of each
}

// AppendLog records lines of remote command output. The engine sends them
// already redacted and bounded; Apply bounds what it keeps again, so that
// no command can grow the state beyond the limits above.
type AppendLog struct {
	ID     string     `json:"id"`
	Chunks []LogChunk `json:"chunks"`
	At     time.Time  `json:"at"`
}

// CmdAppendLog tags AppendLog in the log.
const CmdAppendLog CommandType = 16

// CommandType implements Command.
func (AppendLog) CommandType() CommandType { return CmdAppendLog }

// ErrNoLog means the deployment has no recorded output (none yet, or it
// is older than the KeepLogs newest that keep theirs).
var ErrNoLog = fmt.Errorf("no recorded output")

func (l *Ledger) appendLog(c *AppendLog) error {
	d := l.Deployments[c.ID]
	if d == nil {
		return fmt.Errorf("%s: %w", c.ID, ErrUnknownDeployment)
	}
	n := 0
	for _, ch := range c.Chunks {
		if d.Hosts[ch.Host] == nil {
			return fmt.Errorf("%s in %s: %w", ch.Host, c.ID, ErrUnknownHost)
		}
		for _, ln := range ch.Lines {
			if ln.Stream != Stdout && ln.Stream != Stderr {
				return fmt.Errorf("%w: stream %q", ErrBadCommand, ln.Stream)
			}
		}
		n += len(ch.Lines)
	}
	if n > MaxLogAppendLines {
		return fmt.Errorf("%w: %d lines in one append (at most %d)", ErrBadCommand, n, MaxLogAppendLines)
	}
	if l.Logs == nil {
		l.Logs = map[string]*DeploymentLog{}
	}
	dl := l.Logs[c.ID]
	if dl == nil {
		dl = &DeploymentLog{}
		l.Logs[c.ID] = dl
		l.dropOldLogs()
	}
	for _, ch := range c.Chunks {
		sl := dl.stage(ch.Host, ch.Stage)
		for _, ln := range ch.Lines {
			dl.Seq++
			ln.Seq, ln.Host, ln.Stage, ln.Phase, ln.Command = dl.Seq, "", "", ch.Phase, ch.Command
			ln.Text = cutLine(ln.Text)
			if sl.Bytes == nil {
				sl.Bytes, sl.Cut = map[Stream]int{}, map[Stream]int{}
			}
			// Copy on write: a snapshot shares the old slice (Copy).
			sl.Lines = append(sl.Lines, ln)
			sl.Bytes[ln.Stream] += len(ln.Text)
			dl.Bytes += len(ln.Text)
		}
		for _, st := range []Stream{Stdout, Stderr} {
			dl.Bytes -= sl.trim(st, MaxLogStreamBytes)
		}
	}
	for dl.Bytes > MaxDeploymentLogBytes {
		big, stream := dl.largest()
		cut := big.trim(stream, big.Bytes[stream]-MaxLogLineBytes)
		if cut == 0 {
			break
		}
		dl.Bytes -= cut
	}
	return nil
}

// stage returns the log of host in stage, created at the end when new.
func (dl *DeploymentLog) stage(host string, st Stage) *StageLog {
	for _, s := range dl.Stages {
		if s.Host == host && s.Stage == st {
			return s
		}
	}
	s := &StageLog{Host: host, Stage: st}
	dl.Stages = append(dl.Stages, s)
	return s
}

// largest is the stream that holds the most text (the first such, in
// stage order then stdout before stderr: deterministic).
func (dl *DeploymentLog) largest() (*StageLog, Stream) {
	var best *StageLog
	var bs Stream
	for _, s := range dl.Stages {
		for _, st := range []Stream{Stdout, Stderr} {
			if best == nil || s.Bytes[st] > best.Bytes[bs] {
				best, bs = s, st
			}
		}
	}
	return best, bs
}

// trim drops the oldest lines of stream until it holds at most max bytes
// (at least one line goes when max is below the newest line), and returns
// how many bytes it dropped.
func (s *StageLog) trim(stream Stream, max int) int {
	if s.Bytes[stream] <= max {
		return 0
	}
	dropped := 0
	kept := s.Lines[:0:0]
	for _, ln := range s.Lines {
		if ln.Stream == stream && s.Bytes[stream]-dropped > max {
			dropped += len(ln.Text)
			continue
		}
		kept = append(kept, ln)
	}
	s.Lines = kept
	s.Bytes[stream] -= dropped
	s.Cut[stream] += dropped
	return dropped
}

// cutLine bounds a line to MaxLogLineBytes, on a rune boundary.
func cutLine(s string) string {
	if len(s) <= MaxLogLineBytes {
		return s
	}
	i := MaxLogLineBytes
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + " [line cut]"
}

// dropOldLogs keeps the logs of the KeepLogs newest deployments that have
// one (in creation order), and of no deployment that is gone.
func (l *Ledger) dropOldLogs() {
	kept := 0
	for _, id := range slices.Backward(l.Order) {
		if _, ok := l.Logs[id]; !ok {
			continue
		}
		if kept++; kept > KeepLogs {
			delete(l.Logs, id)
		}
	}
	for id := range l.Logs {
		if l.Deployments[id] == nil {
			delete(l.Logs, id)
		}
	}
}

// LogQuery selects recorded lines: of one deployment, optionally one host
// and one stage, those after line After.
type LogQuery struct {
	ID    string `json:"id"`
	Host  string `json:"host,omitempty"`
	Stage Stage  `json:"stage,omitempty"`
	After uint64 `json:"after,omitempty"`
}

// LogPage is the answer to a LogQuery: the lines in the order they were
// recorded (with Host and Stage filled), the Seq to ask after next, and
// what was cut from the front of the selected streams.
type LogPage struct {
	Lines []LogLine `json:"lines"`
	Next  uint64    `json:"next"`
	// Cut is the bytes dropped per stream to keep within the bounds.
	Cut map[Stream]int `json:"cut,omitempty"`
}

// LogsOf answers q. A deployment with no recorded output yet has an empty
// page; an unknown one is ErrUnknownDeployment.
func (l *Ledger) LogsOf(q LogQuery) (LogPage, error) {
	if l.Deployments[q.ID] == nil {
		return LogPage{}, fmt.Errorf("%s: %w", q.ID, ErrUnknownDeployment)
	}
	page := LogPage{Lines: []LogLine{}, Next: q.After}
	dl := l.Logs[q.ID]
	if dl == nil {
		return page, nil
	}
	for _, s := range dl.Stages {
		if (q.Host != "" && s.Host != q.Host) || (q.Stage != "" && s.Stage != q.Stage) {
			continue
		}
		for st, n := range s.Cut {
			if n > 0 {
				if page.Cut == nil {
					page.Cut = map[Stream]int{}
				}
				page.Cut[st] += n
			}
		}
		for _, ln := range s.Lines {
			if ln.Seq > q.After {
				ln.Host, ln.Stage = s.Host, s.Stage
				page.Lines = append(page.Lines, ln)
			}
		}
	}
	slices.SortFunc(page.Lines, func(a, b LogLine) int { return cmp.Compare(a.Seq, b.Seq) })
	if n := len(page.Lines); n > 0 {
		page.Next = page.Lines[n-1].Seq
	}
	return page, nil
}

// copyLogs copies what appendLog changes in place, sharing the lines.
func copyLogs(src map[string]*DeploymentLog) map[string]*DeploymentLog {
	if src == nil {
		return nil
	}
	out := make(map[string]*DeploymentLog, len(src))
	for id, dl := range src {
		c := &DeploymentLog{Seq: dl.Seq, Bytes: dl.Bytes, Stages: make([]*StageLog, len(dl.Stages))}
		for i, s := range dl.Stages {
			sc := &StageLog{Host: s.Host, Stage: s.Stage, Lines: s.Lines[:len(s.Lines):len(s.Lines)]}
			if s.Bytes != nil {
				sc.Bytes, sc.Cut = map[Stream]int{}, map[Stream]int{}
				for k, v := range s.Bytes {
					sc.Bytes[k] = v
				}
				for k, v := range s.Cut {
					sc.Cut[k] = v
				}
			}
			c.Stages[i] = sc
		}
		out[id] = c
	}
	return out
}
