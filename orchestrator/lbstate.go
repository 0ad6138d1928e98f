package orchestrator

import (
	"context"
	"fmt"
	"strings"

	"github.com/drover-dev/drover/lb/haproxy"
)

// haproxyBalancer is the plan's HAProxy instances (haproxy.Group) with the
// two reads the engine needs, State and Backend, one entry per server per
// instance.
type haproxyBalancer struct {
	*haproxy.Group
}

// State reads server's row on every instance; a server that an instance
// does not know is an error.
func (b haproxyBalancer) State(ctx context.Context, server string) (LBStates, error) {
	views, err := b.View(ctx, server)
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", server, err)
	}
	return lbStates(views), nil
}

// Backend reads every server of backend on every instance.
func (b haproxyBalancer) Backend(ctx context.Context, backend string) (LBStates, error) {
	views, err := b.Group.Backend(ctx, backend)
	if err != nil {
		return nil, err
	}
	return lbStates(views), nil
}

func lbStates(views []haproxy.InstanceView) LBStates {
	out := make(LBStates, len(views))
	for i, v := range views {
		out[i] = LBState{
			Instance:   "haproxy " + v.Instance,
			Server:     v.ID(),
			Admin:      strings.ToUpper(string(v.Admin)),
			Status:     v.Status,
			InRotation: v.InRotation(),
		}
	}
	return out
}
