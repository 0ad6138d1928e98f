package orchestrator

import (
	"context"
	"encoding/json"
	"time"

	"github.com/drover-dev/drover/analysis"
	"github.com/drover-dev/drover/deploy"
)

// EventKind says what an Event reports.
type EventKind string

// Event kinds, in the order a deployment usually emits them.
const (
	EventStarted     EventKind = "started"      // a deployment began or resumed
	EventPreflight   EventKind = "preflight"    // preflight passed (or, with Err, failed)
	EventBatch       EventKind = "batch"        // a batch starts
	EventStage       EventKind = "stage"        // a host entered a stage
	EventHostDone    EventKind = "host_done"    // a host finished its pipeline
	EventHostFailed  EventKind = "host_failed"  // a host failed a stage
	EventHostSkipped EventKind = "host_skipped" // a host needed no work
	EventProbe       EventKind = "probe"        // a health probe during verify: Message "ok", or Error
	EventRollback    EventKind = "rollback"     // the deployment is rolling back
	EventWarning     EventKind = "warning"      // something to know that changes nothing
	EventNote        EventKind = "note"         // how the engine chose to act (which checks, why a host is re-enabled)
	EventAnalysis    EventKind = "analysis"     // a batch's analysis begins or passed (Message)
	EventGate        EventKind = "gate"         // one sample of an analysis gate (Sample)
	EventCanary      EventKind = "canary"       // the canary's weights were set (Weights, Share) or restored
	EventPaused      EventKind = "paused"       // stopped at a safe point
	EventFinished    EventKind = "finished"     // reached a terminal state
)

// Event is one step of a deployment, for progress views and logs.
type Event struct {
	Time       time.Time              `json:"time"`
	Deployment string                 `json:"deployment"`
	Kind       EventKind              `json:"kind"`
	Batch      int                    `json:"batch,omitempty"` // 1-based
	Batches    int                    `json:"batches,omitempty"`
	Hosts      []string               `json:"hosts,omitempty"` // for batch events
	Host       string                 `json:"host,omitempty"`
	Stage      deploy.Stage           `json:"stage,omitempty"`
	Phase      deploy.Phase           `json:"phase,omitempty"`
	Version    string                 `json:"version,omitempty"`
	State      deploy.DeploymentState `json:"state,omitempty"`
	Message    string                 `json:"message,omitempty"`
	Error      string                 `json:"error,omitempty"`
	Output     string                 `json:"output,omitempty"` // bounded output of a failed command
	// Elapsed is how long the host's previous stage took (on a stage,
	// done or failed event). In JSON: seconds, as a number.
	Elapsed time.Duration `json:"-"`
	// Sample is what an analysis gate saw (EventGate).
	Sample *analysis.Sample `json:"sample,omitempty"`
	// Weights are server weights ("backend/server": weight) and Share the
	// canary's share of the traffic in percent (EventCanary; no Share
	// when the weights were restored).
	Weights map[string]int `json:"weights,omitempty"`
	Share   float64        `json:"share,omitempty"`
}

// eventJSON is Event with Elapsed in seconds (docs/json.md).
type eventJSON struct {
	plainEvent
	ElapsedSeconds float64 `json:"elapsed,omitempty"`
}

type plainEvent Event

// MarshalJSON writes the event as docs/json.md describes it.
func (e Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(eventJSON{plainEvent(e), e.Elapsed.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *Event) UnmarshalJSON(b []byte) error {
	var j eventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*e = Event(j.plainEvent)
	e.Elapsed = time.Duration(j.ElapsedSeconds * float64(time.Second))
	return nil
}

// reportKinds are the events the engine records as reports (deploy.Report)
// besides showing them: what no other command of the ledger says.
var reportKinds = map[EventKind]deploy.EventKind{
	EventPreflight: deploy.EvPreflight,
	EventNote:      deploy.EvNote,
	EventWarning:   deploy.EvWarning,
	EventProbe:     deploy.EvProbe,
	EventAnalysis:  deploy.EvAnalysisStart,
}

// report shows ev (emit) and records it in the ledger, so that whoever
// watches the deployment sees it, in local and cluster mode alike. A probe
// is recorded only when its result differs from the host's last recorded
// one. A report that cannot be recorded (the run is ending, or its leader
// was deposed) is only shown: it changes nothing.
func (r *run) report(ctx context.Context, ev Event) {
	r.emit(ev)
	kind, ok := reportKinds[ev.Kind]
	if !ok {
		return
	}
	if ev.Kind == EventProbe {
		result := ev.Message + "\x00" + ev.Error
		r.mu.Lock()
		same := r.probes[ev.Host] == result
		r.probes[ev.Host] = result
		r.mu.Unlock()
		if same {
			return
		}
	}
	_ = r.e.d.Store.Apply(ctx, &deploy.Report{ID: r.id, Kind: kind, Host: ev.Host, Phase: ev.Phase, Target: ev.Version,
		Batch: ev.Batch, Message: ev.Message, Error: ev.Error, At: r.e.d.Now().UTC()})
}
