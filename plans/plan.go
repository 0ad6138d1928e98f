// Package plans holds the deployment plan: its model, strict YAML decoding
// with positions, validation, and the batch arithmetic derived from it.
package plans

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Plan is a validated deployment plan. Every field is filled: defaults are
// applied by Load, so callers never need to guess a zero value's meaning.
type Plan struct {
	// Path is the plan file as given on the command line; Dir is its folder
	// (relative artifact and key paths are resolved against it).
	Path string `json:"path"`
	Dir  string `json:"dir"`

	Name    string `json:"name"`
	Version string `json:"version"`

	// Inventory is the absolute path of the inventory file the hosts were
	// read from, empty when they are listed inline.
	Inventory string `json:"inventory,omitempty"`

	Hosts        []Host       `json:"hosts"`
	SSH          SSH          `json:"ssh"`
	LoadBalancer LoadBalancer `json:"load_balancer"`
	Strategy     Strategy     `json:"strategy"`
	Release      Release      `json:"release"`
	Health       Health       `json:"health"`
	Rollback     Rollback     `json:"rollback"`
	Hooks        Hooks        `json:"hooks"`
	// Analysis, when set, judges each batch by its metrics once it is back
	// in rotation (nil: health checks alone, as before the key existed).
	Analysis *Analysis `json:"analysis,omitempty"`
	// Secrets names variables whose values are blanked out of the command
	// output drover records (events, errors, the replicated state).
	Secrets []string `json:"secrets,omitempty"`
	// Notify is where deployment events are sent (webhooks).
	Notify Notify `json:"notify,omitzero"`

	// Keys is where the keys that name things outside the plan are
	// written (files, sockets, addresses, URLs, ports), by path such as
	// "load_balancer.haproxy.socket" or "load_balancer.haproxy[1].address":
	// an error found when one is used points at it (see Where).
	Keys map[string]Position `json:"keys,omitempty"`

	// Vars are the values taken from outside the file (${NAME} variables
	// and --set), for `drover plan show`; not part of the recorded plan.
	Vars []Var `json:"-"`
}

// Backend is the HAProxy backend of the host's lb_server, "" without one.
func (h Host) Backend() string {
	b, _, ok := strings.Cut(h.LBServer, "/")
	if !ok {
		return ""
	}
	return b
}

// Transport says how the coordinator reaches a host.
type Transport string

// Transports a host may use.
const (
	TransportSSH   Transport = "ssh"
	TransportAgent Transport = "agent"
)

// Host is one target machine.
type Host struct {
	Name      string    `json:"name"`
	Address   string    `json:"address"`   // host:port, port defaulted to 22
	LBServer  string    `json:"lb_server"` // "<backend>/<server>", empty when there is no balancer
	Transport Transport `json:"transport"`
}

// HostKeyChecking is the SSH host key policy.
type HostKeyChecking string

// Host key policies.
const (
	HostKeyStrict    HostKeyChecking = "strict"
	HostKeyAcceptNew HostKeyChecking = "accept-new"
)

// SSH is how hosts with the ssh transport are reached.
type SSH struct {
	User            string          `json:"user"`          // default: the current user
	IdentityFile    string          `json:"identity_file"` // absolute after Load; may be empty (agent only)
	KnownHosts      string          `json:"known_hosts"`   // absolute after Load; default ~/.ssh/known_hosts
	HostKeyChecking HostKeyChecking `json:"host_key_checking"`
	ConnectTimeout  time.Duration   `json:"connect_timeout"` // default 10s
	CommandTimeout  time.Duration   `json:"command_timeout"` // default 5m; bounds every remote command
	// SessionPerCommand runs each command in an SSH session (a login shell)
	// of its own instead of one shell session per host, so that a host's
	// ForceCommand sees each command. Default false.
	SessionPerCommand bool `json:"session_per_command,omitempty"`
}

// DrainTimeoutAction is what a drain that times out does.
type DrainTimeoutAction string

// Drain timeout actions.
const (
	DrainTimeoutFail  DrainTimeoutAction = "fail"
	DrainTimeoutForce DrainTimeoutAction = "force"
)

// LoadBalancer is the balancer in front of the hosts. No HAProxy means none.
type LoadBalancer struct {
	// HAProxy lists the runtime API of every HAProxy instance that fronts
	// the hosts (an HAProxy pair: two); a host is drained and enabled on all.
	HAProxy        HAProxies          `json:"haproxy,omitempty"`
	DrainTimeout   time.Duration      `json:"drain_timeout"` // default 30s
	OnDrainTimeout DrainTimeoutAction `json:"on_drain_timeout"`
	EnableTimeout  time.Duration      `json:"enable_timeout"` // default 30s: how long to wait for UP
}

// HAProxy addresses the runtime API: exactly one of Socket and Address is set.
type HAProxy struct {
	Socket  string `json:"socket,omitempty"`  // unix socket path
	Address string `json:"address,omitempty"` // host:port
}

// HAProxies are the instances of a load balancer. They decode from JSON as
// a list or as one object, the form of plans recorded before lists (the
// replicated log keeps them).
type HAProxies []HAProxy

// UnmarshalJSON accepts a list of instances or a single one.
func (h *HAProxies) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var one HAProxy
		if err := json.Unmarshal(t, &one); err != nil {
			return err
		}
		*h = HAProxies{one}
		return nil
	}
	var list []HAProxy
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	*h = list
	return nil
}

// Size is a count of hosts or a percentage of a total.
type Size struct {
	N       int  `json:"n"`
	Percent bool `json:"percent"`
}

// Of resolves the size against total hosts. Percentages round up, and a
// positive percentage of a non-empty fleet is never zero.
func (s Size) Of(total int) int {
	if !s.Percent {
		return s.N
	}
	return (s.N*total + 99) / 100
}

// String renders the size the way a plan writes it.
func (s Size) String() string {
	if s.Percent {
		return fmt.Sprintf("%d%%", s.N)
	}
	return fmt.Sprintf("%d", s.N)
}

// Strategy is how hosts are grouped and how many failures are tolerated.
type Strategy struct {
	Batches     []Size        `json:"batches"` // the last one repeats; `batch: N` is a one-element ramp
	MaxFailures Size          `json:"max_failures"`
	Pause       time.Duration `json:"pause"`
	// MinInService is how many servers of each backend stay in rotation
	// while hosts are drained (default 1), counting servers already down;
	// a percentage is of the backend's servers in the plan.
	MinInService Size `json:"min_in_service"`
	// AllowFullOutage lifts MinInService: batches may drain a whole
	// backend (first installs, maintenance windows).
	AllowFullOutage bool `json:"allow_full_outage,omitempty"`
	// Concurrency bounds how many hosts are connected to, checked in
	// preflight or pruned at once (batches are sized by Batches). 0, in
	// plans recorded before the key existed, means DefaultConcurrency.
	Concurrency int `json:"concurrency,omitempty"`
	// Canary, when set, rolls the release to a few hosts first and gives
	// them a share of the traffic for a while (see Canary).
	Canary *Canary `json:"canary,omitempty"`
}

// HostConcurrency is Strategy.Concurrency with its default applied.
func (p *Plan) HostConcurrency() int {
	if p.Strategy.Concurrency > 0 {
		return p.Strategy.Concurrency
	}
	return DefaultConcurrency
}

// Release is what is installed on each host.
type Release struct {
	Artifact        string `json:"artifact"` // absolute after Load
	StripComponents int    `json:"strip_components"`
	Path            string `json:"path"`
	Restart         string `json:"restart"`
	Keep            int    `json:"keep"` // default 5
}

// Health is how a host is judged healthy after activation.
type Health struct {
	HTTP             *HTTPCheck    `json:"http,omitempty"`
	TCP              *TCPCheck     `json:"tcp,omitempty"`
	Command          string        `json:"command,omitempty"`
	Interval         time.Duration `json:"interval"`          // default 1s
	Timeout          time.Duration `json:"timeout"`           // default 2s
	HealthyThreshold int           `json:"healthy_threshold"` // default 3
	Deadline         time.Duration `json:"deadline"`          // default 60s
	MinHealthyTime   time.Duration `json:"min_healthy_time"`
}

// HTTPCheck probes a URL; URL may use {{.Host}}, {{.Name}} and {{.Version}}.
type HTTPCheck struct {
	URL          string `json:"url"`
	Status       int    `json:"status"` // default 200
	BodyContains string `json:"body_contains,omitempty"`
}

// TCPCheck dials a port on the host's address.
type TCPCheck struct {
	Port int `json:"port"`
}

// Rollback is the rollback policy.
type Rollback struct {
	Automatic bool `json:"automatic"` // default true
}

// Hooks are commands run on the host at pipeline stages, from the new release.
type Hooks struct {
	BeforeDrain   []string `json:"before_drain,omitempty"`
	AfterInstall  []string `json:"after_install,omitempty"`
	AfterActivate []string `json:"after_activate,omitempty"`
	AfterEnable   []string `json:"after_enable,omitempty"`
}
