package orchestrator

import (
	"context"
	"io"
	"io/fs"
	"strings"

	"github.com/drover-dev/drover/plans"
)

// Host is what the engine needs from a machine, whatever carries the bytes
// (SSH or an agent). Implementations must be safe for sequential use by one
// goroutine; the engine never calls one Host concurrently.
type Host interface {
	// Run runs cmd through the remote shell. Output (stdout and stderr) goes
	// to out. A non-zero exit is an error that unwraps to the transport's exit
	// error; ctx bounds the call.
	Run(ctx context.Context, cmd string, out io.Writer) error
	// Put writes r to path atomically (a temp file beside it, then rename).
	Put(ctx context.Context, path string, r io.Reader, mode fs.FileMode) error
	// Close releases the connection.
	Close() error
}

// Connector opens a Host for a plan's host entry.
type Connector interface {
	Connect(ctx context.Context, h plans.Host) (Host, error)
}

// Balancer is what the engine needs from a load balancer. server is the
// plan's lb_server ("backend/server").
type Balancer interface {
	// Drain takes the server out of rotation and returns when no sessions remain.
	Drain(ctx context.Context, server string) error
	// Enable puts the server back and returns when the balancer reports it UP.
	Enable(ctx context.Context, server string) error
	// Check verifies the server exists (preflight); it changes nothing.
	Check(ctx context.Context, server string) error
	// State reads the server's state on every load-balancer instance, one
	// entry per instance; it changes nothing. The engine keeps
	// strategy.min_in_service and tells "in rotation" from it: a server is
	// in rotation only when every instance routes to it.
	State(ctx context.Context, server string) (LBStates, error)
	// Backend reads every server of a backend (those the plan does not
	// name too), one entry per server per instance; it changes nothing.
	Backend(ctx context.Context, backend string) (LBStates, error)
}

// LBState is one server as one load-balancer instance sees it. A plan
// may name several instances (each with its own runtime API): Balancer's
// State and Backend return one entry per server per instance.
type LBState struct {
	// Instance names the load-balancer instance (its socket or address).
	Instance string `json:"instance"`
	// Server is "backend/server".
	Server string `json:"server"`
	// Admin is the operator's setting: AdminReady, AdminDrain or AdminMaint.
	Admin string `json:"admin"`
	// Status is the instance's own word for the server's health ("UP",
	// "UP 1/3", "DOWN", "no check", ...), as it prints it.
	Status string `json:"status"`
	// InRotation: this instance sends new requests to the server (admin
	// ready and status up).
	InRotation bool `json:"in_rotation"`
}

// Administrative states of LBState.Admin.
const (
	AdminReady = "READY"
	AdminDrain = "DRAIN"
	AdminMaint = "MAINT"
)

// Word is the state an operator reads: MAINT or DRAIN when set so,
// otherwise UP when the instance routes to the server, else DOWN.
func (s LBState) Word() string {
	switch {
	case s.Admin == AdminMaint || s.Admin == AdminDrain:
		return s.Admin
	case s.InRotation:
		return "UP"
	}
	return "DOWN"
}

// LBStates are one server's (or one backend's) entries on every instance.
type LBStates []LBState

// InRotation reports whether server is in rotation on every instance that
// knows it (false when none does).
func (ss LBStates) InRotation(server string) bool {
	seen := false
	for _, s := range ss {
		if s.Server == server {
			seen = true
			if !s.InRotation {
				return false
			}
		}
	}
	return seen
}

// Of returns the entries of one server.
func (ss LBStates) Of(server string) LBStates {
	var out LBStates
	for _, s := range ss {
		if s.Server == server {
			out = append(out, s)
		}
	}
	return out
}

// Servers lists the distinct servers, in order of first appearance.
func (ss LBStates) Servers() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s.Server] {
			seen[s.Server] = true
			out = append(out, s.Server)
		}
	}
	return out
}

// String renders the entries of one server, e.g. "UP" for one instance,
// "lb1 UP, lb2 MAINT" for several.
func (ss LBStates) String() string {
	if len(ss) == 1 {
		return ss[0].Word()
	}
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = s.Instance + " " + s.Word()
	}
	return strings.Join(parts, ", ")
}
