package orchestrator

import (
	"context"
	"fmt"
	"strings"

	"github.com/drover-dev/drover/orchestrator/lb/haproxy"
)

// haproxyBalancer is the single-instance HAProxy driver with the two reads
// the engine needs (State, Backend) built on its Servers listing. A driver
// that talks to several instances implements them itself, one entry per
// instance.
type haproxyBalancer struct {
	*haproxy.Driver
	instance string // the runtime API's socket or address
}

// State reads server's row; an unknown server is an error.
func (b haproxyBalancer) State(ctx context.Context, server string) (LBStates, error) {
	backend, _, _ := strings.Cut(server, "/")
	all, err := b.Backend(ctx, backend)
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", server, err)
	}
	out := all.Of(server)
	if len(out) == 0 {
		return nil, fmt.Errorf("state of %s: %w", server, haproxy.ErrUnknownServer)
	}
	return out, nil
}

// Backend reads every server of backend.
func (b haproxyBalancer) Backend(ctx context.Context, backend string) (LBStates, error) {
	servers, err := b.Servers(ctx)
	if err != nil {
		return nil, err
	}
	var out LBStates
	for _, s := range servers {
		if s.Backend != backend {
			continue
		}
		out = append(out, LBState{
			Instance:   b.instance,
			Server:     s.ID(),
			Admin:      strings.ToUpper(string(s.Admin)),
			Status:     s.Status,
			InRotation: s.InRotation(),
		})
	}
	return out, nil
}
