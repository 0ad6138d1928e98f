package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/orchestrator"
	"github.com/drover-dev/drover/plans"
)

// lbStates reads, for each host of d's plan, its state on every load
// balancer instance now ("UP", "MAINT", "lb1 UP, lb2 DRAIN"); nil when the
// plan has no balancer. When the balancer cannot be read from here, every
// host shows "?" and the error is returned.
func lbStates(ctx context.Context, d deploy.Deployment) (map[string]string, error) {
	var p plans.Plan
	if json.Unmarshal(d.Plan, &p) != nil {
		return nil, nil
	}
	lb, err := orchestrator.HAProxyBalancer(&p)
	if err != nil || lb == nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out := map[string]string{}
	backends := map[string]orchestrator.LBStates{}
	for _, h := range p.Hosts {
		b := h.Backend()
		if b == "" {
			continue
		}
		states, ok := backends[b]
		if !ok {
			if states, err = lb.Backend(ctx, b); err != nil {
				for _, h := range p.Hosts {
					out[h.Name] = "?"
				}
				return out, err
			}
			backends[b] = states
		}
		mine := states.Of(h.LBServer)
		out[h.Name] = "not in the load balancer"
		if len(mine) > 0 {
			out[h.Name] = mine.String()
		}
	}
	return out, nil
}

// printWithLB prints d with each host's load-balancer state.
func printWithLB(ctx context.Context, w io.Writer, st hostRecords, d deploy.Deployment) {
	lb, err := lbStates(ctx, d)
	printDeployment(w, st, lb, d)
	if err != nil {
		fmt.Fprintf(w, "load balancer: cannot read it from here: %v\n", err)
	}
}
