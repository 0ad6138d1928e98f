package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/plans"
	"github.com/spf13/cobra"
)

func newRepairCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "repair [PLAN|ID]",
		Short: "Bring every host of a plan back to its recorded release, healthy and in rotation",
		Long: `Bring every host of a plan to a consistent state: on the release drover
recorded for it, healthy, and in rotation on every load balancer. For when a
person or a crash left things half done (a server drained by hand, an app
that died, a deployment aborted mid-batch).

Batch by batch, with the plan's strategy (min_in_service included), each host
is looked at and only what it needs is done:
  on its release, in rotation, healthy   left alone
  healthy but out of rotation            verify, enable
  not healthy                            drain, restart, verify, enable
  on another release                     drain, switch back, restart, verify, enable
Nothing is uploaded: a release missing from a host fails that host. Each
release is checked with the restart, health checks and hooks of the
deployment that installed it. Hosts without a recorded release are left
alone and listed.

PLAN is a plan file (its hosts, ssh and load balancer); ID is a deployment
whose plan is used; default: the plan of the latest deployment. With
--server the cluster's leader runs the repair and this command follows it
as it does a deploy (Ctrl-C stops watching, the repair goes on).
Exit codes: 0 every host consistent, 1 some host could not be repaired.`,
		Example: `  drover repair web.yaml
  drover repair web-20261129-171500-ab12`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withControl(cmd.Context(), g, func(ctx context.Context, ctl control) error {
				id, skipped, err := ctl.repair(ctx, args)
				if len(skipped) > 0 {
					note(g, fmt.Sprintf("left alone, no release recorded for them: %s", strings.Join(skipped, ", ")))
				}
				if err != nil {
					return err
				}
				return ctl.follow(ctx, id)
			})
		},
	}
}

// repair records a repair of the plan named by args in the embedded
// coordinator.
func (c *local) repair(ctx context.Context, args []string) (string, []string, error) {
	p, err := repairPlan(ctx, c, args)
	if err != nil {
		return "", nil, err
	}
	id, skipped, err := c.engine.SubmitRepair(ctx, p)
	if err != nil {
		return "", skipped, withCode(exitUsage, submitError(err))
	}
	return id, skipped, nil
}

// repairPlan reads the plan named by args: a plan file, a deployment ID,
// or the latest deployment's.
func repairPlan(ctx context.Context, c *local, args []string) (*plans.Plan, error) {
	if len(args) == 1 {
		if fi, err := os.Stat(args[0]); err == nil && !fi.IsDir() {
			return loadPlan(args[0], nil)
		}
	}
	d, err := c.pick(ctx, args, func(deploy.Deployment) bool { return true })
	if err != nil {
		if len(args) == 1 {
			return nil, withCode(exitUsage, fmt.Errorf("%s is neither a plan file nor a deployment: %w", args[0], err))
		}
		return nil, err
	}
	var p plans.Plan
	if err := json.Unmarshal(d.Plan, &p); err != nil {
		return nil, withCode(exitFailed, fmt.Errorf("plan of %s: %w", d.ID, err))
	}
	return &p, nil
}

// repair asks the cluster for a repair of the plan named by args (a plan
// file, whose text is sent; else a deployment of the cluster, whose plan
// the leader uses).
func (r remote) repair(ctx context.Context, args []string) (string, []string, error) {
	var req api.RepairRequest
	if len(args) == 1 {
		if fi, err := os.Stat(args[0]); err == nil && !fi.IsDir() {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return "", nil, withCode(exitUsage, err)
			}
			// Checked here for FILE:LINE:COL errors; the coordinators read
			// the SSH key files, and a repair uploads no archive.
			opts, err := planOptions(nil)
			if err != nil {
				return "", nil, err
			}
			p, err := plans.ParseWith(args[0], data, opts, plans.Files{SkipCoordinatorFiles: true, Artifact: plans.ArtifactUnchecked})
			if err != nil {
				return "", nil, withCode(exitUsage, err)
			}
			req.PlanName, req.Plan, req.Vars = args[0], string(data), envVars(p)
		}
	}
	if req.Plan == "" {
		d, err := r.pick(ctx, args, func(deploy.Deployment) bool { return true })
		if err != nil {
			if len(args) == 1 && errors.Is(err, api.ErrNotFound) {
				return "", nil, withCode(exitUsage, fmt.Errorf("%s is neither a plan file nor a deployment: %w", args[0], err))
			}
			return "", nil, apiError(err)
		}
		req.Of = d.ID
	}
	out, err := r.cl.Repair(ctx, req)
	return out.ID, out.Skipped, apiError(err)
}
