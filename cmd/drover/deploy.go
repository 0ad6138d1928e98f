package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/drover-dev/drover/orchestrator"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/raftstore"
	"github.com/spf13/cobra"
)

func newDeployCmd(g *globalFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "deploy PLAN",
		Short: "Roll the plan's release out to its hosts",
		Long: `Roll the plan's release out to its hosts, batch by batch.

Before anything is touched, a preflight checks every host (SSH reachable with a
verified host key, its server known to the load balancer, enough disk). Then
each host goes through drain -> install -> activate -> verify -> enable. If more
hosts fail than strategy.max_failures allows, the rollout stops and every
touched host goes back to its previous release (rollback.automatic, on by default).

Ctrl-C once: no new host is started, hosts in flight finish and go back into
rotation, the deployment is recorded as paused ('drover resume' continues it).
Ctrl-C twice: stop at once; 'drover resume' re-runs the interrupted stages.`,
		Example: `  drover plan validate web.yaml
  drover deploy web.yaml
  drover deploy web.yaml --output json | jq .`,
		Args: exactArgs(1, "PLAN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := plans.Load(args[0])
			if err != nil {
				return withCode(exitUsage, err)
			}
			return withLocal(cmd.Context(), g, func(ctx context.Context, c *local) error {
				id, err := c.engine.Submit(ctx, p, orchestrator.SubmitOptions{Force: force})
				if err != nil {
					return withCode(exitUsage, submitError(err))
				}
				return c.drive(ctx, id)
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "redeploy hosts that already run the plan's version")
	return cmd
}

// submitError explains why a deployment could not be recorded.
func submitError(err error) error {
	switch {
	case errors.Is(err, raftstore.ErrHostLocked), errors.Is(err, raftstore.ErrNameInUse):
		return fmt.Errorf("%w\n(see 'drover status'; continue it with 'drover resume ID' or end it with 'drover abort ID')", err)
	}
	return err
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s needs %s (got %d arguments); see '%s --help'", cmd.CommandPath(), names, len(args), cmd.CommandPath())
		}
		return nil
	}
}

// local is the embedded single-node coordinator.
type local struct {
	store  *raftstore.Store
	engine *orchestrator.Engine
	view   *view
}

func withLocal(ctx context.Context, g *globalFlags, fn func(context.Context, *local) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	v, err := newView(os.Stdout, g.output)
	if err != nil {
		return withCode(exitUsage, err)
	}
	st, err := raftstore.OpenSingle(ctx, raftstore.Options{Dir: g.dataDir})
	if err != nil {
		if errors.Is(err, raftstore.ErrDataDirInUse) {
			return withCode(exitUsage, fmt.Errorf("%w (another 'drover deploy' is running here; wait for it or use another --data-dir)", err))
		}
		return withCode(exitFailed, err)
	}
	defer st.Close()
	c := &local{store: st, view: v}
	c.engine = orchestrator.New(orchestrator.DefaultDeps(st, v.event))
	return fn(ctx, c)
}

// drive runs a deployment in the foreground with the two-stage Ctrl-C, and
// turns its final state into an exit code.
func (c *local) drive(ctx context.Context, id string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		n := 0
		for range sigs {
			n++
			if n == 1 {
				c.view.note("stopping: no new hosts will start; hosts in flight finish and go back into rotation (Ctrl-C again to stop at once)")
				close(stop)
				continue
			}
			c.view.note("stopping now: interrupted stages will be re-run by 'drover resume " + id + "'")
			cancel()
			return
		}
	}()

	if d, err := c.store.Deployment(id); err == nil {
		c.view.begin(d)
	}
	st, runErr := c.engine.Run(ctx, stop, id)
	d, err := c.store.Deployment(id)
	if err == nil {
		c.view.end(d)
	}
	switch {
	case errors.Is(runErr, orchestrator.ErrPreflight):
		return withCode(exitUsage, runErr)
	case runErr != nil && ctx.Err() != nil:
		return withCode(exitPaused, fmt.Errorf("interrupted; continue with 'drover resume %s'", id))
	case runErr != nil:
		return withCode(exitFailed, runErr)
	}
	switch st {
	case raftstore.StateSucceeded:
		return nil
	case raftstore.StateRolledBack:
		return withCode(exitRolledBack, errors.New("deployment failed and was rolled back: "+d.Error))
	case raftstore.StatePaused:
		return withCode(exitPaused, fmt.Errorf("paused; continue with 'drover resume %s'", id))
	default:
		return withCode(exitFailed, fmt.Errorf("deployment %s: %s", st, d.Error))
	}
}
