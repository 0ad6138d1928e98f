package deploy

import (
	"fmt"
	"sort"
	"time"

	"github.com/drover-dev/drover/analysis"
)

// EventKind says what an Event records.
type EventKind string

// Event kinds.
const (
	EvCreated EventKind = "created" // a deployment was recorded
	EvStage   EventKind = "stage"   // a host entered a stage
	EvState   EventKind = "state"   // the deployment's state changed
	EvRequest EventKind = "request" // an operator asked to pause, resume or abort
	EvGate    EventKind = "gate"    // a round of analysis samples (Samples)
	// EvAnalysis says a batch passed its analysis (Batch).
	EvAnalysis EventKind = "analysis"
	// EvWeights says the canary's weights were set (Weights, Share), or
	// that every server is back at its weight.
	EvWeights EventKind = "weights"
	// Reports (Report): what an engine saw, recorded for every watcher.
	EvPreflight     EventKind = "preflight"      // the preflight passed (Message)
	EvNote          EventKind = "note"           // how the engine chose to act
	EvWarning       EventKind = "warning"        // something to know that changes nothing
	EvProbe         EventKind = "probe"          // a health probe's result changed: Message "ok", or Error
	EvAnalysisStart EventKind = "analysis_start" // a batch's analysis begins (Batch, Message)
	// EvTrimmed says that events after the watcher's last one were dropped
	// from the bounded history before it asked.
	EvTrimmed EventKind = "trimmed"
)

// Event is one change to a deployment, numbered in apply order. Seq is the
// same on every node (it counts applied commands, which every node applies
// in the same order), so a watcher that reconnects to another node resumes
// exactly after the last event it saw.
type Event struct {
	Seq        uint64          `json:"seq"`
	Time       time.Time       `json:"time"`
	Deployment string          `json:"deployment"`
	Kind       EventKind       `json:"kind"`
	Host       string          `json:"host,omitempty"`
	Stage      Stage           `json:"stage,omitempty"`
	Phase      Phase           `json:"phase,omitempty"`
	Target     string          `json:"target,omitempty"`
	State      DeploymentState `json:"state,omitempty"`
	Message    string          `json:"message,omitempty"`
	Error      string          `json:"error,omitempty"`
	Output     string          `json:"output,omitempty"`
	Batch      int             `json:"batch,omitempty"` // 1-based, for analysis events
	// During is the stage a host failed in (Stage StageFailed).
	During Stage `json:"during,omitempty"`
	// Samples are the gates' samples of one analysis round (EvGate).
	Samples []analysis.Sample `json:"samples,omitempty"`
	// Weights are the canary's server weights and Share its share of the
	// traffic in percent (EvWeights).
	Weights map[string]int `json:"weights,omitempty"`
	Share   float64        `json:"share,omitempty"`
}

// MaxEvents bounds the replicated event history (about 150 bytes each):
// enough for the last few hundred deployments of a fleet; older
// deployments keep their full record, only their step-by-step log goes.
const MaxEvents = 10000

// record appends an event, dropping the oldest beyond MaxEvents.
func (l *Ledger) record(ev Event) {
	ev.Seq = l.Seq
	l.Events = append(l.Events, ev)
	if n := len(l.Events) - MaxEvents; n > 0 {
		l.TrimmedThrough = l.Events[n-1].Seq
		l.Events = append(l.Events[:0:0], l.Events[n:]...)
	}
}

// EventsAfter returns the events of deployment id (all deployments when
// id is "") with Seq > after.
//
// When events the caller has not seen were trimmed from the history, the
// answer starts with an EvTrimmed event saying so (its Seq is the last
// trimmed one), instead of silently going on after the gap.
func (l *Ledger) EventsAfter(id string, after uint64) []Event {
	i := sort.Search(len(l.Events), func(i int) bool { return l.Events[i].Seq > after })
	var out []Event
	if after < l.TrimmedThrough {
		d := l.Deployments[id]
		if id == "" || d == nil || d.Seq <= l.TrimmedThrough {
			out = append(out, Event{Seq: l.TrimmedThrough, Deployment: id, Kind: EvTrimmed,
				Message: fmt.Sprintf("events %d to %d are no longer kept (the history holds the last %d); the deployment's record (drover status) is complete",
					after+1, l.TrimmedThrough, MaxEvents)})
		}
	}
	for _, ev := range l.Events[i:] {
		if id == "" || ev.Deployment == id {
			out = append(out, ev)
		}
	}
	return out
}
