package orchestrator

import (
	"context"
	"io"
	"io/fs"

	"github.com/drover-dev/drover/internal/fence"
)

// Fencing: a coordinator that lost leadership must not touch a host or the
// load balancer again, even if it has not noticed yet. The engine wraps
// every Host and Balancer it uses so that each call first asks Deps.Fence,
// which confirms leadership (in a cluster, raft's VerifyLeader: a round
// trip to a quorum) and returns the current Raft term. The fence also
// travels in the call's context: drivers whose one call takes several
// steps check it again before each change (package fence), and the term
// reaches the host (SSH exports it as DROVER_TERM; the agent rejects
// older terms than it has seen).

// withFence puts f in ctx and checks it.
func withFence(ctx context.Context, f fence.Func) (context.Context, error) {
	ctx, err := fence.Check(fence.With(ctx, f))
	if err != nil {
		return ctx, &fatalError{err}
	}
	return ctx, nil
}

// fencedHost fences every call on a host. Health-check commands are
// fenced too: they run through the same Run, and a deposed leader has no
// business probing either.
type fencedHost struct {
	Host
	fence fence.Func
}

func (h fencedHost) Run(ctx context.Context, cmd string, out io.Writer) error {
	ctx, err := withFence(ctx, h.fence)
	if err != nil {
		return err
	}
	return h.Host.Run(ctx, cmd, out)
}

func (h fencedHost) Put(ctx context.Context, path string, r io.Reader, mode fs.FileMode) error {
	ctx, err := withFence(ctx, h.fence)
	if err != nil {
		return err
	}
	return h.Host.Put(ctx, path, r, mode)
}

// fencedBalancer fences Drain and Enable; Check, State and Backend only read.
type fencedBalancer struct {
	Balancer
	fence fence.Func
}

func (b fencedBalancer) Drain(ctx context.Context, server string) error {
	ctx, err := withFence(ctx, b.fence)
	if err != nil {
		return err
	}
	return b.Balancer.Drain(ctx, server)
}

func (b fencedBalancer) Enable(ctx context.Context, server string) error {
	ctx, err := withFence(ctx, b.fence)
	if err != nil {
		return err
	}
	return b.Balancer.Enable(ctx, server)
}
