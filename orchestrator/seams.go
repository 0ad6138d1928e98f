package orchestrator

import (
	"context"
	"io"
	"io/fs"

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
}
