package deploy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/drover-dev/drover/analysis"
	"github.com/drover-dev/drover/plans"
)

// Errors returned by Apply; callers test them with errors.Is.
var (
	ErrHostLocked        = errors.New("host is held by another deployment")
	ErrUnknownDeployment = errors.New("no such deployment")
	ErrUnknownHost       = errors.New("host is not part of the deployment")
	ErrExists            = errors.New("deployment already exists")
	ErrTerminal          = errors.New("deployment has ended")
	ErrBadCommand        = errors.New("malformed command")
	ErrNameInUse         = errors.New("a deployment of this name is in progress")
	// ErrInconsistent means a state (a backup, a snapshot) decodes but
	// breaks the rules that apply relies on, such as a running deployment
	// whose host has no record. Installing it would make every node fail
	// at the same log entry, so it is refused whole.
	ErrInconsistent = errors.New("inconsistent state")
)

// CommandType tags a command in the log. Values are stable: they are on
// disk. This package's commands take 1 to 4, 12 to 16; the store that carries
// the ledger tags its own (cluster membership, tokens, agents) with others.
type CommandType uint8

// The ledger's command types.
const (
	CmdCreateDeployment CommandType = 1
	CmdSetHostStage     CommandType = 2
	CmdSetState         CommandType = 3
	CmdRequest          CommandType = 4
	CmdPrune            CommandType = 12
	CmdGateSamples      CommandType = 13
	CmdAnalysisPassed   CommandType = 14
	CmdSetWeights       CommandType = 15
	// CmdReport is 20, away from the numbers other commands take next.
	CmdReport CommandType = 20
)

// Command is one change recorded in the replicated log.
type Command interface {
	CommandType() CommandType
}

// CreateDeployment records a new deployment and locks its hosts. It fails
// with ErrHostLocked when any host is held by another running deployment.
type CreateDeployment struct {
	Deployment Deployment `json:"deployment"`
	At         time.Time  `json:"at"`
}

// SetHostStage moves one host to a stage. The engine applies it before the
// stage's first side effect, so a new leader knows what may be half done.
type SetHostStage struct {
	ID     string `json:"id"`
	Host   string `json:"host"`
	Stage  Stage  `json:"stage"`
	Phase  Phase  `json:"phase"`
	Target string `json:"target"`
	Error  string `json:"error,omitempty"`
	// Output is the bounded output of the command that failed, if any.
	Output string `json:"output,omitempty"`
	// During is the stage that failed (with Stage StageFailed).
	During Stage     `json:"during,omitempty"`
	At     time.Time `json:"at"`
}

// SetState changes a deployment's state along the state machine (CanMove).
// Reaching a terminal state releases the deployment's host locks.
type SetState struct {
	ID    string          `json:"id"`
	State DeploymentState `json:"state"`
	Error string          `json:"error,omitempty"`
	At    time.Time       `json:"at"`
}

// Request records an operator's request to pause, resume or abort.
type Request struct {
	ID     string    `json:"id"`
	Pause  bool      `json:"pause,omitempty"`
	Resume bool      `json:"resume,omitempty"`
	Abort  bool      `json:"abort,omitempty"`
	At     time.Time `json:"at"`
}

// GateSamples records one round of a batch's analysis: every gate's
// sample, as one event for whoever watches the deployment. It changes
// nothing else: the verdict is AnalysisPassed, or the batch's hosts
// recorded failed.
type GateSamples struct {
	ID      string            `json:"id"`
	Batch   int               `json:"batch"` // 0-based
	Samples []analysis.Sample `json:"samples"`
	At      time.Time         `json:"at"`
}

// AnalysisPassed records that the analysis of batch Batch (0-based)
// passed: until then a batch with gates whose hosts are done stays open
// (OpenBatch), so that a new leader runs the analysis the old one did not
// finish instead of skipping it.
type AnalysisPassed struct {
	ID    string `json:"id"`
	Batch int    `json:"batch"`
	// Baselines are the old release's last values the relative gates saw,
	// by gate: a leader that takes over once no host is left on the old
	// release judges with them (Deployment.Baselines).
	Baselines map[string]float64 `json:"baselines,omitempty"`
	At        time.Time          `json:"at"`
}

// SetWeights records the load balancer's server weights before the engine
// changes them for a canary (Set), with the weights every server goes back
// to (Restore): whoever ends or resumes the deployment restores them, even
// a new leader. Restore empty records that they are back
// (Deployment.Weights cleared).
type SetWeights struct {
	ID      string         `json:"id"`
	Restore map[string]int `json:"restore,omitempty"` // by "backend/server"
	Set     map[string]int `json:"set,omitempty"`     // the canary's weights
	// Share is the canary's share of the traffic, in percent (events).
	Share float64   `json:"share,omitempty"`
	At    time.Time `json:"at"`
}

// Report records what an engine saw that changes no deployment but that
// every watcher must see the same way, in local and cluster mode: a
// preflight's result, a note on how it chose to act, a warning, the start
// of a batch's analysis, a health probe's result during verify. Its text
// is cut to MaxReportText bytes; the engine records a probe only when its
// result changes, so a long verify adds a few events, not one per probe.
type Report struct {
	ID   string    `json:"id"`
	Kind EventKind `json:"kind"` // one of ReportKinds
	Host string    `json:"host,omitempty"`
	// Phase and Target say what the host was going to.
	Phase   Phase     `json:"phase,omitempty"`
	Target  string    `json:"target,omitempty"`
	Batch   int       `json:"batch,omitempty"` // 1-based, for EvAnalysisStart
	Message string    `json:"message,omitempty"`
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"at"`
}

// ReportKinds are the event kinds a Report records.
var ReportKinds = []EventKind{EvPreflight, EvNote, EvWarning, EvProbe, EvAnalysisStart}

// MaxReportText bounds a Report's Message and Error, each.
const MaxReportText = 2048

// Retention defaults: what Prune keeps when its command leaves a field zero.
const (
	// DefaultKeepFinished is how many finished deployments (with their
	// plans) the ledger keeps; running and paused ones are always kept.
	DefaultKeepFinished = 100
)

// Prune bounds the history: it keeps the newest KeepFinished finished
// deployments and drops older ones (never one that is running or paused,
// nor one that an unfinished rollback reverts, which are kept on top).
// Everything it decides comes from the command, so every node drops the
// same records. The store that carries the ledger prunes its own records
// (spent tokens) on the same command, against At.
type Prune struct {
	KeepFinished int       `json:"keep_finished,omitempty"` // 0: DefaultKeepFinished
	At           time.Time `json:"at"`
}

// CommandType implements Command.
func (CreateDeployment) CommandType() CommandType { return CmdCreateDeployment }

// CommandType implements Command.
func (SetHostStage) CommandType() CommandType { return CmdSetHostStage }

// CommandType implements Command.
func (SetState) CommandType() CommandType { return CmdSetState }

// CommandType implements Command.
func (Request) CommandType() CommandType { return CmdRequest }

// CommandType implements Command.
func (Prune) CommandType() CommandType { return CmdPrune }

// CommandType implements Command.
func (GateSamples) CommandType() CommandType { return CmdGateSamples }

// CommandType implements Command.
func (AnalysisPassed) CommandType() CommandType { return CmdAnalysisPassed }

// CommandType implements Command.
func (SetWeights) CommandType() CommandType { return CmdSetWeights }
func (Report) CommandType() CommandType     { return CmdReport }

// NewCommand returns an empty command of type t to decode a payload into,
// or nil when t is not one of the ledger's.
func NewCommand(t CommandType) Command {
	switch t {
	case CmdCreateDeployment:
		return &CreateDeployment{}
	case CmdSetHostStage:
		return &SetHostStage{}
	case CmdSetState:
		return &SetState{}
	case CmdRequest:
		return &Request{}
	case CmdPrune:
		return &Prune{}
	case CmdGateSamples:
		return &GateSamples{}
	case CmdAnalysisPassed:
		return &AnalysisPassed{}
	case CmdSetWeights:
		return &SetWeights{}
	case CmdAppendLog:
		return &AppendLog{}
	case CmdReport:
		return &Report{}
	}
	return nil
}

// Ledger is the record of every deployment and of what each host runs. It
// is only changed by Apply.
type Ledger struct {
	Deployments map[string]*Deployment `json:"deployments"`
	Hosts       map[string]*HostRecord `json:"hosts"`
	// Order lists deployments in creation order.
	Order []string `json:"order"`
	// Seq counts applied commands (the carrier's own too); events carry it.
	Seq    uint64  `json:"seq"`
	Events []Event `json:"events,omitempty"`
	// TrimmedThrough is the Seq of the newest event dropped from Events
	// (bounded by MaxEvents): a watcher resuming before it has missed some.
	TrimmedThrough uint64 `json:"trimmed_through,omitempty"`
	// Logs are the remote commands' output, by deployment (logs.go).
	Logs map[string]*DeploymentLog `json:"logs,omitempty"`
}

// NewLedger returns an empty ledger.
func NewLedger() Ledger {
	return Ledger{Deployments: map[string]*Deployment{}, Hosts: map[string]*HostRecord{}}
}

// Apply changes l by one command. It is deterministic: everything it needs
// (times, IDs) is in the command. Seq counts every command, refused ones
// too, so it is the same on every node whatever each command's outcome.
func (l *Ledger) Apply(c Command) error {
	l.Seq++
	switch c := c.(type) {
	case *CreateDeployment:
		return l.create(c)
	case *SetHostStage:
		return l.setHostStage(c)
	case *SetState:
		return l.setState(c)
	case *Request:
		return l.request(c)
	case *Prune:
		return l.prune(c)
	case *GateSamples:
		return l.gateSamples(c)
	case *AnalysisPassed:
		return l.analysisPassed(c)
	case *SetWeights:
		return l.setWeights(c)
	case *AppendLog:
		return l.appendLog(c)
	case *Report:
		return l.report(c)
	}
	return fmt.Errorf("%w: %T", ErrBadCommand, c)
}

func (l *Ledger) create(c *CreateDeployment) error {
	d := c.Deployment.Clone()
	if d.ID == "" || len(d.Batches) == 0 {
		return fmt.Errorf("%w: deployment needs an id and hosts", ErrBadCommand)
	}
	if _, ok := l.Deployments[d.ID]; ok {
		return fmt.Errorf("%s: %w", d.ID, ErrExists)
	}
	for _, other := range l.Deployments {
		if other.Name == d.Name && !other.State.Terminal() {
			return fmt.Errorf("%w: %s is %s", ErrNameInUse, other.ID, other.State)
		}
	}
	names := d.HostNames()
	for _, h := range names {
		if r := l.Hosts[h]; r != nil && r.Lock != "" {
			return fmt.Errorf("%s: %w %s", h, ErrHostLocked, r.Lock)
		}
	}
	if d.Hosts == nil {
		d.Hosts = map[string]*HostProgress{}
	}
	for _, h := range names {
		r := l.Hosts[h]
		if r == nil {
			r = &HostRecord{Name: h}
			l.Hosts[h] = r
		}
		r.Lock = d.ID
		hp := d.Hosts[h]
		if hp == nil {
			hp = &HostProgress{Name: h, Target: d.Version, Phase: PhaseRollout}
			d.Hosts[h] = hp
		}
		if hp.Stage == "" {
			hp.Stage = StagePending
		}
		hp.FromCurrent, hp.FromPrevious = r.Current, r.Previous
		hp.Since = c.At
	}
	if d.State == "" {
		d.State = StateRunning
	}
	d.Created, d.Updated = c.At, c.At
	d.Seq = l.Seq
	l.Deployments[d.ID] = &d
	l.Order = append(l.Order, d.ID)
	l.record(Event{Time: c.At, Deployment: d.ID, Kind: EvCreated, State: d.State, Target: d.Version})
	return nil
}

func (l *Ledger) running(id string) (*Deployment, error) {
	d := l.Deployments[id]
	if d == nil {
		return nil, fmt.Errorf("%s: %w", id, ErrUnknownDeployment)
	}
	if d.State.Terminal() {
		return nil, fmt.Errorf("%s is %s: %w", id, d.State, ErrTerminal)
	}
	return d, nil
}

func (l *Ledger) setHostStage(c *SetHostStage) error {
	d, err := l.running(c.ID)
	if err != nil {
		return err
	}
	hp := d.Hosts[c.Host]
	if hp == nil {
		return fmt.Errorf("%s in %s: %w", c.Host, c.ID, ErrUnknownHost)
	}
	if l.Hosts[c.Host] == nil {
		return fmt.Errorf("%w: host %s of %s has no record", ErrInconsistent, c.Host, c.ID)
	}
	hp.Stage, hp.Phase, hp.Since = c.Stage, c.Phase, c.At
	if c.Error != "" && hp.Error == "" {
		hp.Error = c.Error
	}
	if c.Stage == StageActivate && c.Phase == PhaseRollout {
		hp.Activated = true
	}
	if c.Stage == StageFailed && c.Phase == PhaseRollout {
		hp.RolloutFailed = true
	}
	if c.Stage == StageSkipped {
		hp.Skipped = c.Error
	}
	if c.Target != "" {
		hp.Target = c.Target
	}
	// A failure is not a side effect: a host refused before its first
	// stage (min_in_service) stays untouched, and needs no rollback.
	switch c.Stage {
	case StagePending, StageSkipped, StageFailed:
	default:
		hp.Touched = true
	}
	if c.Stage == StageDone {
		r := l.Hosts[c.Host]
		switch c.Phase {
		case PhaseRollout:
			switch {
			case d.Kind == KindRollback:
				// An operator's rollback leaves no "previous" to go back
				// to: rolling back again must not revert the revert.
				r.Current, r.Previous = hp.Target, ""
			case r.Current != hp.Target:
				r.Previous, r.Current = r.Current, hp.Target
			}
		case PhaseRollback:
			// Back to exactly what it was before: the failed release never
			// becomes anybody's "previous stable".
			r.Current, r.Previous = hp.FromCurrent, hp.FromPrevious
		}
	}
	d.Updated = c.At
	l.record(Event{Time: c.At, Deployment: d.ID, Kind: EvStage, Host: c.Host, Stage: c.Stage, Phase: c.Phase,
		Target: hp.Target, Error: c.Error, Output: c.Output, During: c.During})
	return nil
}

// report records c as an event and changes nothing else (not even the
// deployment's Updated: a report is not progress).
func (l *Ledger) report(c *Report) error {
	d, err := l.running(c.ID)
	if err != nil {
		return err
	}
	if !slices.Contains(ReportKinds, c.Kind) {
		return fmt.Errorf("%w: a report of kind %q", ErrBadCommand, c.Kind)
	}
	if c.Host != "" && d.Hosts[c.Host] == nil {
		return fmt.Errorf("%s in %s: %w", c.Host, c.ID, ErrUnknownHost)
	}
	if c.Batch < 0 || c.Batch > len(d.Batches) {
		return fmt.Errorf("%w: a report on batch %d of %s (%d batches)", ErrBadCommand, c.Batch, c.ID, len(d.Batches))
	}
	l.record(Event{Time: c.At, Deployment: d.ID, Kind: c.Kind, Host: c.Host, Phase: c.Phase, Target: c.Target,
		Batch: c.Batch, Message: cutText(c.Message), Error: cutText(c.Error)})
	return nil
}

// cutText bounds a report's text to MaxReportText bytes, on a rune
// boundary.
func cutText(s string) string {
	if len(s) <= MaxReportText {
		return s
	}
	const more = " …"
	n := MaxReportText - len(more)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + more
}

func (l *Ledger) setState(c *SetState) error {
	d, err := l.running(c.ID)
	if err != nil {
		return err
	}
	if err := CanMove(d.State, c.State); err != nil {
		return fmt.Errorf("%s: %w", c.ID, err)
	}
	d.State, d.Updated = c.State, c.At
	if c.Error != "" {
		d.Error = c.Error
	}
	if c.State == StateRunning || c.State == StatePaused {
		d.PauseRequested = false
	}
	if c.State.Terminal() {
		d.Ended = c.At
		for _, h := range d.HostNames() {
			if r := l.Hosts[h]; r != nil && r.Lock == d.ID {
				r.Lock = ""
			}
		}
	}
	l.record(Event{Time: c.At, Deployment: d.ID, Kind: EvState, State: c.State, Error: c.Error})
	return nil
}

func (l *Ledger) request(c *Request) error {
	d, err := l.running(c.ID)
	if err != nil {
		return err
	}
	switch {
	case c.Abort:
		d.AbortRequested = true
	case c.Pause:
		d.PauseRequested = true
	case c.Resume:
		d.PauseRequested = false
		if d.State == StatePaused {
			d.State = StateRunning
		}
	}
	d.Updated = c.At
	msg := "pause"
	switch {
	case c.Abort:
		msg = "abort"
	case c.Resume:
		msg = "resume"
	}
	l.record(Event{Time: c.At, Deployment: d.ID, Kind: EvRequest, Message: msg, State: d.State})
	return nil
}

func (l *Ledger) gateSamples(c *GateSamples) error {
	d, err := l.running(c.ID)
	if err != nil {
		return err
	}
	if c.Batch < 0 || c.Batch >= len(d.Batches) || len(c.Samples) == 0 {
		return fmt.Errorf("%w: samples of batch %d of %s (%d batches)", ErrBadCommand, c.Batch, c.ID, len(d.Batches))
	}
	d.Updated = c.At
	l.record(Event{Time: c.At, Deployment: d.ID, Kind: EvGate, Batch: c.Batch + 1,
		Samples: append([]analysis.Sample(nil), c.Samples...)})
	return nil
}

func (l *Ledger) analysisPassed(c *AnalysisPassed) error {
	d, err := l.running(c.ID)
	if err != nil {
		return err
	}
	if c.Batch < 0 || c.Batch >= len(d.Batches) {
		return fmt.Errorf("%w: analysis of batch %d of %s (%d batches)", ErrBadCommand, c.Batch, c.ID, len(d.Batches))
	}
	for gate, v := range c.Baselines {
		if d.Baselines == nil {
			d.Baselines = map[string]float64{}
		}
		d.Baselines[gate] = v
	}
	if slices.Contains(d.AnalysisPassed, c.Batch) {
		return nil // recorded again by a leader that resumed: nothing new
	}
	d.AnalysisPassed = append(d.AnalysisPassed, c.Batch)
	slices.Sort(d.AnalysisPassed)
	d.Updated = c.At
	l.record(Event{Time: c.At, Deployment: d.ID, Kind: EvAnalysis, Batch: c.Batch + 1,
		Message: fmt.Sprintf("batch %d passed every gate", c.Batch+1)})
	return nil
}

func (l *Ledger) setWeights(c *SetWeights) error {
	d, err := l.running(c.ID)
	if err != nil {
		return err
	}
	for s, w := range c.Set {
		if _, ok := c.Restore[s]; !ok || w < 0 {
			return fmt.Errorf("%w: weight %d of %s in %s, without a weight to restore", ErrBadCommand, w, s, c.ID)
		}
	}
	d.Updated = c.At
	if len(c.Restore) == 0 {
		if d.Weights == nil {
			return nil // restored again by a leader that resumed: nothing new
		}
		d.Weights = nil
		l.record(Event{Time: c.At, Deployment: d.ID, Kind: EvWeights, Message: "every server is back at its weight"})
		return nil
	}
	d.Weights = &Weights{Restore: maps.Clone(c.Restore), Set: maps.Clone(c.Set), Share: c.Share}
	l.record(Event{Time: c.At, Deployment: d.ID, Kind: EvWeights, Weights: maps.Clone(c.Set), Share: c.Share,
		Message: fmt.Sprintf("canary at %s%% of the traffic", plans.FormatShare(c.Share))})
	return nil
}

func (l *Ledger) prune(c *Prune) error {
	deps, err := l.Prunable(c)
	if err != nil || len(deps) == 0 {
		return err
	}
	kept := l.Order[:0:0]
	for _, id := range l.Order {
		if !deps[id] {
			kept = append(kept, id)
		}
	}
	l.Order = kept
	for id := range deps {
		delete(l.Deployments, id)
		delete(l.Logs, id)
	}
	return nil
}

// Prunable returns the deployments c drops from l: the rule, for Apply and
// for a carrier that skips writing a Prune with nothing to drop.
func (l *Ledger) Prunable(c *Prune) (map[string]bool, error) {
	keep := c.KeepFinished
	if keep < 0 {
		return nil, fmt.Errorf("%w: keep_finished %d", ErrBadCommand, keep)
	}
	if keep == 0 {
		keep = DefaultKeepFinished
	}
	needed := map[string]bool{}
	for _, d := range l.Deployments {
		if !d.State.Terminal() {
			needed[d.Of] = true
		}
	}
	finished := 0
	for id, d := range l.Deployments {
		if d.State.Terminal() && !needed[id] {
			finished++
		}
	}
	drop := finished - keep
	deps := map[string]bool{}
	for _, id := range l.Order {
		if drop <= 0 {
			break
		}
		if d := l.Deployments[id]; d.State.Terminal() && !needed[id] {
			deps[id] = true
			drop--
		}
	}
	return deps, nil
}

// Copy copies what Apply changes in place, sharing what it never changes
// once recorded: each deployment's plan (raw JSON) and the events
// (appended to, or replaced by a new slice when trimmed, never rewritten).
// A snapshot encodes the copy while commands go on being applied.
func (l *Ledger) Copy() Ledger {
	c := Ledger{Deployments: make(map[string]*Deployment, len(l.Deployments)), Hosts: make(map[string]*HostRecord, len(l.Hosts)),
		Order: append([]string(nil), l.Order...), Seq: l.Seq, Events: l.Events[:len(l.Events):len(l.Events)],
		TrimmedThrough: l.TrimmedThrough, Logs: copyLogs(l.Logs)}
	for k, d := range l.Deployments {
		dc := d.Clone()
		c.Deployments[k] = &dc
	}
	for k, r := range l.Hosts {
		rc := *r
		c.Hosts[k] = &rc
	}
	return c
}
