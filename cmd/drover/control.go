package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/deploy"
)

// control is what the deployment commands (deploy, repair, status,
// history, pause, resume, abort, rollback) talk to: the cluster's API over
// HTTPS (remote) or the embedded single-node coordinator in this process
// (local). Each command has one body, written against it; the rules
// themselves are deploy's (Decide, AbortNow, Resumable) and the engine's
// (Submit, SubmitRepair, SubmitRollback).
type control interface {
	// driver says what drives this side's deployments (deploy.Driver).
	driver() deploy.Driver
	// get returns one deployment.
	get(ctx context.Context, id string) (deploy.Deployment, error)
	// pick returns the deployment named in args, or the newest one ok accepts.
	pick(ctx context.Context, args []string, ok func(deploy.Deployment) bool) (deploy.Deployment, error)
	// newest returns the newest n deployments (0: all), oldest first.
	newest(ctx context.Context, n int) ([]deploy.Deployment, error)
	// records knows what each host runs now; nil when only the deployment's
	// own record is known (a cluster client).
	records() hostRecords
	// submit records a deployment of a plan and returns its ID.
	submit(ctx context.Context, s submission) (string, error)
	// repair records a repair of the plan named by args (a plan file, a
	// deployment ID, or the latest deployment's plan) and returns its ID
	// and the hosts it leaves alone.
	repair(ctx context.Context, args []string) (id string, skipped []string, err error)
	// act records an operator's lifecycle action on deployment id.
	act(ctx context.Context, id string, a deploy.Action) error
	// rollback records a rollback of deployment id (to release `to`, ""
	// for each host's previous one) and returns its ID.
	rollback(ctx context.Context, id, to string) (string, error)
	// logs returns the recorded output of remote commands that q selects.
	logs(ctx context.Context, q deploy.LogQuery) (deploy.LogPage, error)
	// follow shows deployment id until it ends (the embedded coordinator
	// runs it here; a cluster client watches) and returns its exit code.
	follow(ctx context.Context, id string) error
}

// withControl runs fn against the cluster when one is configured, else
// against the embedded coordinator in --data-dir: the one a running local
// deploy serves on the data dir's socket, or one in this process.
func withControl(ctx context.Context, g *globalFlags, fn func(context.Context, control) error) error {
	if handled, err := withCluster(ctx, &g.cluster, func(ctx context.Context, cl *api.Client) error {
		return fn(ctx, remote{cl: cl, g: g})
	}); handled {
		return err
	}
	if cl := dialEmbedded(g.dataDir); cl != nil {
		if ctx == nil {
			ctx = context.Background()
		}
		err := fn(ctx, remote{cl: cl, g: g, embedded: true})
		if errors.Is(err, api.ErrConflict) {
			// The embedded coordinator says what runs and what to do.
			return withCode(exitUsage, err)
		}
		return apiError(err)
	}
	return withLocal(ctx, g, func(ctx context.Context, c *local) error { return fn(ctx, c) })
}

// runsHere reports whether a deployment asked for now would run in this
// process: no cluster is configured and no local deploy serves the data
// dir (withControl's choice).
func runsHere(g *globalFlags) bool {
	addrs, err := g.cluster.addrs()
	return err == nil && addrs == nil && dialEmbedded(g.dataDir) == nil
}

// remote is a cluster, or the embedded coordinator of another drover
// process on the same data dir, through its API.
type remote struct {
	cl       *api.Client
	g        *globalFlags
	embedded bool // over the data dir's socket
}

func (remote) driver() deploy.Driver { return deploy.Supervised }

func (r remote) get(ctx context.Context, id string) (deploy.Deployment, error) {
	return r.cl.Deployment(ctx, id)
}

func (r remote) pick(ctx context.Context, args []string, ok func(deploy.Deployment) bool) (deploy.Deployment, error) {
	if len(args) == 1 {
		return r.cl.Deployment(ctx, args[0])
	}
	ds, err := r.cl.Deployments(ctx)
	if err != nil {
		return deploy.Deployment{}, err
	}
	return newestOf(ds, ok, "in the cluster")
}

func (r remote) newest(ctx context.Context, n int) ([]deploy.Deployment, error) {
	if n == 0 || n > api.MaxPageSize {
		ds, err := r.cl.Deployments(ctx)
		if err != nil {
			return nil, err
		}
		return newest(ds, n), nil
	}
	p, err := r.cl.DeploymentsPage(ctx, "", n)
	if err != nil {
		return nil, err
	}
	slices.Reverse(p.Deployments)
	return p.Deployments, nil
}

func (remote) records() hostRecords { return nil }

func (r remote) act(ctx context.Context, id string, a deploy.Action) error {
	return r.cl.Act(ctx, id, a)
}

func (r remote) rollback(ctx context.Context, id, to string) (string, error) {
	return r.cl.Rollback(ctx, id, to)
}

func (r remote) logs(ctx context.Context, q deploy.LogQuery) (deploy.LogPage, error) {
	return r.cl.Logs(ctx, q)
}

func (r remote) follow(ctx context.Context, id string) error {
	return watchNew(ctx, r, id)
}

// The embedded coordinator: nothing runs its deployments but a command in
// the foreground, which holds the data dir.
func (*local) driver() deploy.Driver { return deploy.Unattended }

func (c *local) get(_ context.Context, id string) (deploy.Deployment, error) {
	d, err := c.store.Deployment(id)
	if err != nil {
		return d, withCode(exitUsage, err)
	}
	return d, nil
}

func (c *local) pick(_ context.Context, args []string, ok func(deploy.Deployment) bool) (deploy.Deployment, error) {
	if len(args) == 1 {
		d, err := c.store.Deployment(args[0])
		if err != nil {
			return d, withCode(exitUsage, fmt.Errorf("%w (see 'drover history')", err))
		}
		return d, nil
	}
	return newestOf(c.store.Deployments(), ok, "in this data dir")
}

func (c *local) newest(_ context.Context, n int) ([]deploy.Deployment, error) {
	return newest(c.store.Deployments(), n), nil
}

func (c *local) records() hostRecords { return c.store }

func (c *local) act(ctx context.Context, id string, a deploy.Action) error {
	d, err := c.get(ctx, id)
	if err != nil {
		return err
	}
	if a == deploy.ActionResume && d.State.Terminal() {
		return withCode(exitUsage, fmt.Errorf("%s has ended (%s): nothing to resume", d.ID, d.State))
	}
	cmd, err := deploy.Decide(&d, a, c.driver(), time.Now().UTC())
	if st, ok := cmd.(*deploy.SetState); ok && st.State.Terminal() {
		// Ended here, with no run: a canary's weights go back first.
		err = c.engine.RestoreWeights(ctx, id)
	}
	if err == nil {
		err = c.store.Apply(ctx, cmd)
	}
	if err != nil {
		return withCode(exitUsage, err)
	}
	return nil
}

func (c *local) rollback(ctx context.Context, id, to string) (string, error) {
	rid, err := c.engine.SubmitRollback(ctx, id, to)
	if err != nil {
		return "", withCode(exitUsage, submitError(err))
	}
	return rid, nil
}

func (c *local) logs(_ context.Context, q deploy.LogQuery) (deploy.LogPage, error) {
	p, err := c.store.Logs(q)
	if err != nil {
		return p, withCode(exitUsage, err)
	}
	return p, nil
}

func (c *local) follow(ctx context.Context, id string) error { return c.drive(ctx, id) }

// newestOf returns the newest deployment of ds (oldest first) that ok
// accepts; where names the place searched, for the error.
func newestOf(ds []deploy.Deployment, ok func(deploy.Deployment) bool, where string) (deploy.Deployment, error) {
	for i := len(ds) - 1; i >= 0; i-- {
		if ok(ds[i]) {
			return ds[i], nil
		}
	}
	return deploy.Deployment{}, withCode(exitUsage, errors.New("no matching deployment "+where+" (see 'drover history')"))
}
