package main

import (
	"fmt"
	"io"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/transport/agent/installer"
)

// What `plan show -o json` (and `plan validate -o json`) and the cluster
// listings print, described in docs/json.md and docs/json/. Durations are
// seconds, like the deployments'.

// planJSON is a plan as a deploy would run it: defaults applied, ${VAR}
// and --set resolved, the batches cut.
type planJSON struct {
	File         string         `json:"file"`
	Name         string         `json:"name"`
	Version      string         `json:"version"`
	Artifact     string         `json:"artifact"`
	Release      releaseJSON    `json:"release"`
	Hosts        []planHostJSON `json:"hosts"`
	Batches      [][]string     `json:"batches"`
	Strategy     strategyJSON   `json:"strategy"`
	Health       healthJSON     `json:"health"`
	LoadBalancer *lbJSON        `json:"load_balancer,omitempty"`
	Rollback     plans.Rollback `json:"rollback"`
	Hooks        plans.Hooks    `json:"hooks"`
	Analysis     *analysisJSON  `json:"analysis,omitempty"`
	Vars         []planVarJSON  `json:"vars"`
}

type releaseJSON struct {
	Path            string `json:"path"`
	StripComponents int    `json:"strip_components"`
	Restart         string `json:"restart"`
	Keep            int    `json:"keep"`
}

type planHostJSON struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Transport string `json:"transport"`
	LBServer  string `json:"lb_server,omitempty"`
	Batch     int    `json:"batch"`
}

type strategyJSON struct {
	Batches         []string `json:"batches"`      // the ramp as written: "1", "25%"
	MaxFailures     int      `json:"max_failures"` // resolved against the host count
	PauseSeconds    float64  `json:"pause_seconds"`
	MinInService    string   `json:"min_in_service"`
	AllowFullOutage bool     `json:"allow_full_outage"`
	Concurrency     int      `json:"concurrency"`
}

type healthJSON struct {
	HTTP                  *plans.HTTPCheck `json:"http,omitempty"`
	TCP                   *plans.TCPCheck  `json:"tcp,omitempty"`
	Command               string           `json:"command,omitempty"`
	IntervalSeconds       float64          `json:"interval_seconds"`
	TimeoutSeconds        float64          `json:"timeout_seconds"`
	HealthyThreshold      int              `json:"healthy_threshold"`
	DeadlineSeconds       float64          `json:"deadline_seconds"`
	MinHealthyTimeSeconds float64          `json:"min_healthy_time_seconds"`
}

type lbJSON struct {
	HAProxy             []plans.HAProxy `json:"haproxy"`
	DrainTimeoutSeconds float64         `json:"drain_timeout_seconds"`
	OnDrainTimeout      string          `json:"on_drain_timeout"`
	EnableTimeoutSecs   float64         `json:"enable_timeout_seconds"`
}

type analysisJSON struct {
	IntervalSeconds float64      `json:"interval_seconds"`
	DurationSeconds float64      `json:"duration_seconds"`
	FailureLimit    int          `json:"failure_limit"`
	MinRequests     int          `json:"min_requests"`
	PrometheusURL   string       `json:"prometheus_url,omitempty"`
	Gates           []plans.Gate `json:"gates"`
}

// planVarJSON is a value the plan took from outside its file.
type planVarJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	From  string `json:"from"`           // environment, default, --set
	Name  string `json:"name,omitempty"` // the ${NAME}; absent for --set
	// Where the ${NAME} is written, or the value --set replaced.
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
}

func secs(d time.Duration) float64 { return d.Seconds() }

func planToJSON(p *plans.Plan) planJSON {
	j := planJSON{File: p.Path, Name: p.Name, Version: p.Version, Artifact: p.Release.Artifact,
		Release:  releaseJSON{Path: p.Release.Path, StripComponents: p.Release.StripComponents, Restart: p.Release.Restart, Keep: p.Release.Keep},
		Rollback: p.Rollback, Hooks: p.Hooks, Hosts: []planHostJSON{}, Batches: [][]string{}, Vars: []planVarJSON{},
		Strategy: strategyJSON{MaxFailures: p.MaxFailures(), PauseSeconds: secs(p.Strategy.Pause), MinInService: p.Strategy.MinInService.String(),
			AllowFullOutage: p.Strategy.AllowFullOutage, Concurrency: p.HostConcurrency(), Batches: []string{}},
		Health: healthJSON{HTTP: p.Health.HTTP, TCP: p.Health.TCP, Command: p.Health.Command, IntervalSeconds: secs(p.Health.Interval),
			TimeoutSeconds: secs(p.Health.Timeout), HealthyThreshold: p.Health.HealthyThreshold, DeadlineSeconds: secs(p.Health.Deadline),
			MinHealthyTimeSeconds: secs(p.Health.MinHealthyTime)},
	}
	for _, s := range p.Strategy.Batches {
		j.Strategy.Batches = append(j.Strategy.Batches, s.String())
	}
	for i, b := range p.Batches() {
		var names []string
		for _, h := range b {
			names = append(names, h.Name)
			j.Hosts = append(j.Hosts, planHostJSON{Name: h.Name, Address: h.Address, Transport: string(h.Transport), LBServer: h.LBServer, Batch: i + 1})
		}
		j.Batches = append(j.Batches, names)
	}
	if lb := p.LoadBalancer; len(lb.HAProxy) > 0 {
		j.LoadBalancer = &lbJSON{HAProxy: lb.HAProxy, DrainTimeoutSeconds: secs(lb.DrainTimeout), OnDrainTimeout: string(lb.OnDrainTimeout),
			EnableTimeoutSecs: secs(lb.EnableTimeout)}
	}
	if a := p.Analysis; a != nil {
		j.Analysis = &analysisJSON{IntervalSeconds: secs(a.Interval), DurationSeconds: secs(a.Duration), FailureLimit: a.FailureLimit,
			MinRequests: a.MinRequests, Gates: a.Gates}
		if a.Prometheus != nil {
			j.Analysis.PrometheusURL = a.Prometheus.URL
		}
	}
	for _, v := range p.Vars {
		j.Vars = append(j.Vars, planVarJSON{Key: v.Key, Value: v.Value, From: v.From, Name: v.Name, File: v.File, Line: v.Line, Col: v.Col})
	}
	return j
}

// memberJSON is one coordinator (`cluster members -o json`): the API's
// member with its last contact in seconds, as every duration drover prints.
type memberJSON struct {
	api.Member
	// LastContactMS is never set: being shallower, it hides the embedded
	// milliseconds.
	LastContactMS *struct{} `json:"last_contact_ms,omitempty"`
	// LastContactSeconds is how long ago the leader last heard from it;
	// absent for the leader itself and when unknown.
	LastContactSeconds *float64 `json:"last_contact_seconds,omitempty"`
}

func membersJSON(ms []api.Member) []memberJSON {
	out := make([]memberJSON, 0, len(ms))
	for _, m := range ms {
		j := memberJSON{Member: m}
		if c, ok := lastContact(m); ok {
			s := c.Seconds()
			j.LastContactSeconds = &s
		}
		out = append(out, j)
	}
	return out
}

// lastContact is how long ago the leader heard from m, when it says.
func lastContact(m api.Member) (time.Duration, bool) {
	if !m.Reachable || m.Leader || m.LastContactMS < 0 {
		return 0, false
	}
	return time.Duration(m.LastContactMS) * time.Millisecond, true
}

// orEmpty makes a nil list print as [] rather than null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// printToken shows a new token: its clear text alone (for a file or a
// pipe), or with -o json its name and role too.
func printToken(w io.Writer, output string, tok api.TokenResponse) error {
	if output == "json" {
		return writeJSON(w, tok)
	}
	_, err := fmt.Fprintln(w, tok.Token)
	return err
}

// installResultJSON is one host's outcome of `agent install|uninstall -o json`.
type installResultJSON struct {
	Host   string `json:"host"`
	Action string `json:"action"` // installed, upgraded, unchanged, uninstalled, absent
	// Supervisor is what runs the agent (systemd, supervisor), or for an
	// uninstall what was stopped; absent when nothing.
	Supervisor string `json:"supervisor,omitempty"`
}

func installJSON(rs []installer.Result) []installResultJSON {
	out := make([]installResultJSON, 0, len(rs))
	for _, r := range rs {
		out = append(out, installResultJSON{Host: r.Host, Action: r.Action, Supervisor: r.Supervisor})
	}
	return out
}
