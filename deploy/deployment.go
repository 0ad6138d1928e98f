// Package deploy is drover's domain: a deployment and its hosts' progress,
// the pipeline's stage names, the state machine of a deployment with its
// legal moves, which batch is open, the lifecycle decisions (pause,
// resume, abort), and the commands that change the ledger with their
// deterministic apply. It does no I/O and reads no clock: raftstore
// carries a Ledger through Raft, the engine (orchestrator) drives it, and
// the CLI and the API show it.
package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// DeploymentState is where a deployment stands as a whole.
type DeploymentState string

// Deployment states. Succeeded, Failed, RolledBack and Aborted are terminal:
// reaching one releases the deployment's host locks.
const (
	StateRunning     DeploymentState = "running"
	StatePaused      DeploymentState = "paused"
	StateRollingBack DeploymentState = "rolling_back"
	StateSucceeded   DeploymentState = "succeeded"
	StateFailed      DeploymentState = "failed"
	StateRolledBack  DeploymentState = "rolled_back"
	StateAborted     DeploymentState = "aborted"
)

// Terminal reports whether no more work will be done for the deployment.
func (s DeploymentState) Terminal() bool {
	switch s {
	case StateSucceeded, StateFailed, StateRolledBack, StateAborted:
		return true
	}
	return false
}

// Kind says why a deployment exists.
type Kind string

// Deployment kinds.
const (
	KindDeploy   Kind = "deploy"   // roll a new release out
	KindRollback Kind = "rollback" // take the hosts of an earlier deployment back
	// KindRepair brings hosts back to their recorded release, healthy and
	// in rotation (`drover repair`): each host's Target is its Current.
	KindRepair Kind = "repair"
)

// Stage is a host's place in the pipeline.
type Stage string

// Host stages, in pipeline order, then the end states.
const (
	StagePending  Stage = "pending"
	StageDrain    Stage = "drain"
	StageInstall  Stage = "install"
	StageActivate Stage = "activate"
	StageVerify   Stage = "verify"
	StageEnable   Stage = "enable"
	StageDone     Stage = "done"
	StageFailed   Stage = "failed"
	// StageSkipped marks a host that needs no work (already on the target,
	// or left alone by a rollback because it was never touched).
	StageSkipped Stage = "skipped"
)

// Settled reports whether the host has nothing in flight.
func (s Stage) Settled() bool {
	return s == StagePending || s == StageDone || s == StageFailed || s == StageSkipped
}

// Phase says which way a host is moving.
type Phase string

// Host phases.
const (
	PhaseRollout  Phase = "rollout"
	PhaseRollback Phase = "rollback"
)

// Deployment is the replicated record of one deployment.
type Deployment struct {
	ID      string          `json:"id"`
	Name    string          `json:"name"`
	Version string          `json:"version"`
	Kind    Kind            `json:"kind"`
	Of      string          `json:"of,omitempty"` // for a rollback: the deployment it reverts
	Plan    json.RawMessage `json:"plan"`         // the validated plans.Plan, as JSON
	// ArtifactSHA256 pins the archive: a leader that resumes the deployment
	// refuses an artifact that changed since it was submitted.
	ArtifactSHA256 string `json:"artifact_sha256,omitempty"`
	// Force redeploys hosts that already run Version.
	Force   bool                     `json:"force,omitempty"`
	State   DeploymentState          `json:"state"`
	Batches [][]string               `json:"batches"`
	Hosts   map[string]*HostProgress `json:"hosts"`
	Error   string                   `json:"error,omitempty"`
	// PauseRequested is set by an operator; the engine pauses at the next
	// safe point and then sets State to paused.
	PauseRequested bool      `json:"pause_requested,omitempty"`
	AbortRequested bool      `json:"abort_requested,omitempty"`
	Created        time.Time `json:"created"`
	Updated        time.Time `json:"updated"`
	Ended          time.Time `json:"ended,omitempty"`
	// AnalysisPassed lists the batches (0-based, sorted) whose analysis
	// passed (AnalysisPassed commands): see OpenBatch.
	AnalysisPassed []int `json:"analysis_passed,omitempty"`
	// Baselines are the old release's last values seen by the relative
	// gates, by gate (AnalysisPassed).
	Baselines map[string]float64 `json:"baselines,omitempty"`
	// Weights, when set, are load-balancer weights a canary changed and
	// not yet restored (SetWeights).
	Weights *Weights `json:"weights,omitempty"`
	// Seq is the sequence number of the command that created it: whether
	// its first events are still in the event history.
	Seq uint64 `json:"seq,omitempty"`
	// By is who asked for it: "client NAME" (the operator's certificate)
	// or "local USER@HOST"; Message is why, in their words (--message).
	By      string `json:"by,omitempty"`
	Message string `json:"message,omitempty"`
}

// Weights are the server weights a canary set (Set, by "backend/server"),
// its share of the traffic in percent, and every changed backend's servers'
// weights before (Restore).
type Weights struct {
	Restore map[string]int `json:"restore"`
	Set     map[string]int `json:"set"`
	Share   float64        `json:"share"`
}

// FormatWeights renders weights by server, sorted: "web/web1=1 web/web2=3".
func FormatWeights(ws map[string]int) string {
	parts := make([]string, 0, len(ws))
	for _, s := range slices.Sorted(maps.Keys(ws)) {
		parts = append(parts, fmt.Sprintf("%s=%d", s, ws[s]))
	}
	return strings.Join(parts, " ")
}

// HostProgress is one host's progress inside a deployment.
type HostProgress struct {
	Name   string `json:"name"`
	Stage  Stage  `json:"stage"`
	Phase  Phase  `json:"phase"`
	Target string `json:"target"` // the release this host is moving to
	// FromCurrent and FromPrevious are the host's stable releases when the
	// deployment began: rollback restores exactly them.
	FromCurrent  string `json:"from_current,omitempty"`
	FromPrevious string `json:"from_previous,omitempty"`
	Touched      bool   `json:"touched,omitempty"` // a side effect has happened on it
	// RolloutFailed stays set once the host's rollout has failed, even after
	// the host itself is rolled back: it is what the failure budget counts.
	// Activated is set once the rollout reached activate on this host: a
	// host that failed before it still runs its old release, so its
	// rollback needs no install or restart, only verify and enable.
	Activated     bool      `json:"activated,omitempty"`
	RolloutFailed bool      `json:"rollout_failed,omitempty"`
	Error         string    `json:"error,omitempty"`   // the first failure, kept
	Skipped       string    `json:"skipped,omitempty"` // why no work was needed
	Since         time.Time `json:"since"`             // when Stage was entered
}

// HostRecord is what the cluster knows about a host across deployments.
type HostRecord struct {
	Name     string `json:"name"`
	Current  string `json:"current,omitempty"`  // stable release in service
	Previous string `json:"previous,omitempty"` // the stable release before it
	Lock     string `json:"lock,omitempty"`     // deployment holding the host
}

// Clone deep-copies a deployment so that readers never share memory with
// apply.
func (d *Deployment) Clone() Deployment {
	c := *d
	c.Batches = make([][]string, len(d.Batches))
	for i, b := range d.Batches {
		c.Batches[i] = append([]string(nil), b...)
	}
	c.AnalysisPassed = append([]int(nil), d.AnalysisPassed...)
	if d.Baselines != nil {
		c.Baselines = maps.Clone(d.Baselines)
	}
	if d.Weights != nil {
		w := Weights{Restore: maps.Clone(d.Weights.Restore), Set: maps.Clone(d.Weights.Set), Share: d.Weights.Share}
		c.Weights = &w
	}
	c.Hosts = make(map[string]*HostProgress, len(d.Hosts))
	for k, v := range d.Hosts {
		hp := *v
		c.Hosts[k] = &hp
	}
	return c
}

// Touched reports whether any host had a side effect: a deployment that
// ended without touching one was refused before it began (its preflight).
func (d *Deployment) Touched() bool {
	for _, hp := range d.Hosts {
		if hp.Touched {
			return true
		}
	}
	return false
}

// Refused reports whether d failed without changing anything on any host:
// refused by its preflight (or, before its first drain, by
// min_in_service), every host still pending or failed untouched. It is
// read from what the ledger records, so old logs answer the same; history
// lists such a deployment apart from the ones that failed on a host.
func (d *Deployment) Refused() bool {
	if d.State != StateFailed {
		return false
	}
	for _, hp := range d.Hosts {
		if hp.Touched || hp.Stage != StagePending && hp.Stage != StageFailed {
			return false
		}
	}
	return true
}

// HostNames returns the deployment's hosts in batch order.
func (d *Deployment) HostNames() []string {
	var out []string
	for _, b := range d.Batches {
		out = append(out, b...)
	}
	return out
}
