package main

import (
	"context"
	"encoding/json"

	"github.com/drover-dev/drover/orchestrator"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/raftstore"
)

// lbStates reads, for each host of d's plan, its state on every load
// balancer instance ("UP", "MAINT", "lb1 UP, lb2 DRAIN"); nil when the
// plan has no balancer. A failed read shows as "?" with the reason.
func lbStates(ctx context.Context, d raftstore.Deployment) map[string]string {
	var p plans.Plan
	if json.Unmarshal(d.Plan, &p) != nil {
		return nil
	}
	lb, err := orchestrator.HAProxyBalancer(&p)
	if err != nil || lb == nil {
		return nil
	}
	out := map[string]string{}
	for _, h := range p.Hosts {
		if h.LBServer == "" {
			continue
		}
		states, err := lb.State(ctx, h.LBServer)
		if err != nil {
			out[h.Name] = "? (" + err.Error() + ")"
			continue
		}
		out[h.Name] = states.String()
	}
	return out
}
