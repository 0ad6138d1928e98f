package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/deploy"
)

// What `status -o json` and `history -o json` print: the same in local and
// cluster mode, described in docs/json.md (and its schemas in docs/json/).
// Times are RFC 3339, durations seconds.

// deploymentJSON is one deployment.
type deploymentJSON struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
	From    string `json:"from,omitempty"` // the release most hosts ran before
	Of      string `json:"of,omitempty"`
	By      string `json:"by,omitempty"`
	Message string `json:"message,omitempty"`
	State   string `json:"state"`
	// Refused marks a failed deployment that changed no host (its
	// preflight failed): deploy.Deployment.Refused.
	Refused bool   `json:"refused,omitempty"`
	Error   string `json:"error,omitempty"`
	// PauseRequested and AbortRequested: an operator asked, the engine
	// stops at its next safe point.
	PauseRequested  bool       `json:"pause_requested,omitempty"`
	AbortRequested  bool       `json:"abort_requested,omitempty"`
	Created         time.Time  `json:"created"`
	Ended           *time.Time `json:"ended,omitempty"`
	DurationSeconds float64    `json:"duration_seconds"`
	Batch           int        `json:"batch,omitempty"` // running or paused: the open batch, 1-based
	Batches         int        `json:"batches"`
	HostCount       int        `json:"host_count"`
	Hosts           []hostJSON `json:"hosts,omitempty"` // status only
}

// hostJSON is one host of a deployment.
type hostJSON struct {
	Name         string `json:"name"`
	Batch        int    `json:"batch"`
	Stage        string `json:"stage"`
	Phase        string `json:"phase"`
	Target       string `json:"target"`
	Runs         string `json:"runs"`                    // the release it runs now, "" when unknown
	LoadBalancer string `json:"load_balancer,omitempty"` // its state on the balancer(s) now
	Error        string `json:"error,omitempty"`
	Skipped      string `json:"skipped,omitempty"`
}

func toJSON(d deploy.Deployment) deploymentJSON {
	j := deploymentJSON{ID: d.ID, Name: d.Name, Kind: string(d.Kind), Version: d.Version, From: fromVersion(d), Of: d.Of, By: d.By, Message: d.Message, State: string(d.State), Refused: d.Refused(),
		Error: d.Error, PauseRequested: d.PauseRequested, AbortRequested: d.AbortRequested, Created: d.Created, Batches: len(d.Batches), HostCount: len(d.Hosts)}
	if end := d.Ended; !end.IsZero() {
		j.Ended = &end
	}
	j.DurationSeconds = elapsed(d).Seconds()
	if d.State == deploy.StateRunning || d.State == deploy.StatePaused {
		j.Batch = min(d.OpenBatch(), len(d.Batches)-1) + 1
	}
	return j
}

// statusJSON adds each host to d's JSON; st and lb as for printDeployment.
func statusJSON(st hostRecords, lb map[string]string, d deploy.Deployment) deploymentJSON {
	j := toJSON(d)
	for i, b := range d.Batches {
		for _, h := range b {
			hp := d.Hosts[h]
			runs := hostRuns(st, h, hp)
			if runs == "?" {
				runs = ""
			}
			j.Hosts = append(j.Hosts, hostJSON{Name: h, Batch: i + 1, Stage: string(hp.Stage), Phase: string(hp.Phase),
				Target: hp.Target, Runs: runs, LoadBalancer: lb[h], Error: hp.Error, Skipped: hp.Skipped})
		}
	}
	return j
}

// historyJSON is the deployments newest first.
func historyJSON(ds []deploy.Deployment) []deploymentJSON {
	out := make([]deploymentJSON, 0, len(ds))
	for i := len(ds) - 1; i >= 0; i-- {
		out = append(out, toJSON(ds[i]))
	}
	return out
}

// outputFormats are the values --output (-o) takes.
var outputFormats = []string{"auto", "text", "json"}

// checkOutput refuses an --output value that is not one of outputFormats,
// as a usage error that lists them.
func checkOutput(o string) error {
	if slices.Contains(outputFormats, o) {
		return nil
	}
	return withCode(exitUsage, fmt.Errorf("--output %q: want one of %s", o, strings.Join(outputFormats, ", ")))
}

// writeJSON prints v as indented JSON, the form of every -o json output
// that is not a stream of events.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "error_rate < 1%", not \u003c
	return enc.Encode(v)
}
