package coordinator

import (
	"context"
	"fmt"
	"net/http"

	"github.com/drover-dev/drover/raftstore"
	"github.com/drover-dev/drover/ui"
)

// dashboard is the web dashboard (package ui) over this node's copy of the
// replicated state, signed in with a read or manage token.
func (c *Coordinator) dashboard() http.Handler {
	return ui.New(ui.Config{
		Source: c.store,
		Authenticate: func(token string) bool {
			role, ok := c.Authenticate(token)
			return ok && (role == raftstore.RoleRead || role == raftstore.RoleManage)
		},
		Lists: map[string]func(ctx context.Context) (any, error){
			"node":    func(context.Context) (any, error) { return c.Status(), nil },
			"members": func(ctx context.Context) (any, error) { return c.Members(ctx) },
			"agents": func(context.Context) (any, error) {
				// Agents connect to the leader: only it knows who is online.
				if !c.IsLeader() {
					return nil, fmt.Errorf("agents connect to the leader (%s)", c.LeaderHTTP())
				}
				return c.AgentList(), nil
			},
		},
		Log: c.log,
	})
}
