package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"syscall"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/orchestrator"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/raftstore"
	"github.com/drover-dev/drover/webhook"
	"github.com/spf13/cobra"
)

func newDeployCmd(g *globalFlags) *cobra.Command {
	var (
		force, detach, watchFlag bool
		lockWait                 time.Duration
		set                      []string
		uiAddr, message          string
	)
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
Ctrl-C twice: stop at once; 'drover resume' re-runs the interrupted stages.

With --server, the deployment runs in the coordinator cluster: the artifact is
uploaded to it, the leader runs the rollout, and this command only watches
(Ctrl-C stops watching; the deployment goes on; 'drover pause ID' pauses it).
A deployment that names a host held by another running deployment is refused
with that deployment's ID, or waits for it with --lock-wait.
` + planHelp + `
With --server, variables are resolved here, from this shell's environment, and
sent with the plan: the coordinators never read their own environment.`,
		Example: `  drover plan validate web.yaml
  drover deploy web.yaml
  drover deploy web.yaml --set version=2.0.1 --set release.artifact=dist/app-2.0.1.tar.gz
  DROVER_ADDR=10.0.0.5:7443,10.0.0.6:7443 drover deploy web.yaml --lock-wait 10m
  drover deploy web.yaml --output json | jq .`,
		Args: exactArgs(1, "PLAN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if handled, err := withCluster(cmd.Context(), &g.cluster, func(ctx context.Context, cl *api.Client) error {
				return deployRemote(ctx, cl, g, args[0], set, api.SubmitRequest{Force: force, Message: message}, lockWait, detach)
			}); handled {
				return err
			}
			opts, err := planOptions(set)
			if err != nil {
				return err
			}
			// This process sends the webhooks of a local deploy.
			opts.SenderEnv, opts.Sender = os.LookupEnv, "this drover process"
			p, err := plans.LoadWith(args[0], opts, plans.Files{})
			if err != nil {
				return withCode(exitUsage, err)
			}
			// Connect, run the preflight's reads and checksum while the
			// store opens and the deployment is recorded: nothing on a
			// host changes until the run's preflight has judged every host.
			warm := orchestrator.StartWarm(p, orchestrator.SSHConnector, orchestrator.HAProxyBalancer)
			defer warm.Close()
			return withLocal(cmd.Context(), g, func(ctx context.Context, c *local) error {
				if uiAddr != "" {
					stop, err := serveDashboard(ctx, c.store, uiAddr, os.Stderr)
					if err != nil {
						return withCode(exitUsage, err)
					}
					defer stop()
				}
				id, err := c.engine.Submit(ctx, p, orchestrator.SubmitOptions{Force: force, Warm: warm, By: localUser(), Message: message})
				if err != nil {
					return withCode(exitUsage, submitError(err))
				}
				return c.drive(ctx, id)
			})
		},
	}
	addSetFlag(cmd, &set)
	cmd.Flags().BoolVar(&force, "force", false, "redeploy hosts that already run the plan's version")
	cmd.Flags().StringVarP(&message, "message", "m", "", "why you deploy: kept with the deployment, shown by status and history")
	cmd.Flags().DurationVar(&lockWait, "lock-wait", 0, "with --server: when a host is held by another deployment, wait this long for it instead of refusing")
	cmd.Flags().BoolVar(&detach, "detach", false, "with --server: return once the deployment is recorded, without watching it")
	cmd.Flags().StringVar(&uiAddr, "ui", "", "without --server: serve the web dashboard of this deploy on this loopback address (like 127.0.0.1:7480) while it runs")
	cmd.Flags().BoolVar(&watchFlag, "watch", true, "with --server: follow the deployment until it ends (the default; see --detach)")
	return cmd
}

// deployRemote validates the plan here (with FILE:LINE:COL errors), uploads
// the artifact to the cluster, submits the plan's text with the values of
// its variables and --set, and follows it.
func deployRemote(ctx context.Context, cl *api.Client, g *globalFlags, file string, set []string, req api.SubmitRequest, lockWait time.Duration, detach bool) error {
	v, err := newView(os.Stdout, g.output)
	if err != nil {
		return withCode(exitUsage, err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return withCode(exitUsage, err)
	}
	opts, err := planOptions(set)
	if err != nil {
		return err
	}
	// The coordinators read the SSH key files, not this machine.
	p, err := plans.ParseWith(file, data, opts, plans.Files{SkipCoordinatorFiles: true})
	if err != nil {
		return withCode(exitUsage, err)
	}
	req.Vars, req.Set = envVars(p), opts.Set
	art, err := orchestrator.InspectArtifact(p.Release.Artifact, p.Release.StripComponents)
	if err != nil {
		return withCode(exitUsage, err)
	}
	if err := cl.UploadArtifact(ctx, art.SHA256, func() (io.ReadCloser, error) { return os.Open(art.Path) }); err != nil {
		return fmt.Errorf("upload %s: %w", art.Path, err)
	}
	req.PlanName, req.Plan, req.ArtifactSHA256 = file, string(data), art.SHA256
	id, err := submitWaiting(ctx, cl, v, req, lockWait)
	if err != nil {
		return err
	}
	if detach && g.output == "json" {
		d, err := cl.Deployment(ctx, id)
		if err != nil {
			return err
		}
		return writeJSON(os.Stdout, statusJSON(nil, nil, d))
	}
	if detach {
		fmt.Println(id)
		return nil
	}
	sigctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return watch(sigctx, cl, v, id)
}

// envVars are the variables the plan took from this environment: the
// coordinator resolves the plan with these and never with its own.
func envVars(p *plans.Plan) map[string]string {
	var vars map[string]string
	for _, v := range p.Vars {
		if v.From == plans.FromEnv {
			if vars == nil {
				vars = map[string]string{}
			}
			vars[v.Name] = v.Value
		}
	}
	return vars
}

// submitError explains why a deployment could not be recorded.
func submitError(err error) error {
	switch {
	case errors.Is(err, deploy.ErrHostLocked), errors.Is(err, deploy.ErrNameInUse):
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
	st, err := openLocal(ctx, g, "another 'drover deploy' is running here; wait for it or use another --data-dir")
	if err != nil {
		return err
	}
	defer st.Close()
	c := &local{store: st, view: v}
	c.engine = orchestrator.New(orchestrator.DefaultDeps(st, v.event))
	defer sendWebhooks(ctx, st)()
	return fn(ctx, c)
}

// sendWebhooks sends the webhooks of what this process does to the local
// store, from this process's environment; the returned func waits a few
// seconds for the last deliveries before the CLI exits.
func sendWebhooks(ctx context.Context, st *raftstore.Store) (stop func()) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n := webhook.New(webhook.Config{Source: st, Env: os.LookupEnv, Log: log})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	after := webhook.Now(st)
	go func() { defer close(done); n.Run(ctx, after) }()
	return func() {
		fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
		if err := n.Flush(fctx); err != nil {
			log.Warn("exiting with webhooks not delivered", "err", err)
		}
		fcancel()
		cancel()
		<-done
	}
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
	case deploy.StateSucceeded:
		return nil
	case deploy.StateRolledBack:
		return withCode(exitRolledBack, errors.New("deployment failed and was rolled back: "+d.Error))
	case deploy.StatePaused:
		return withCode(exitPaused, fmt.Errorf("paused; continue with 'drover resume %s'", id))
	case deploy.StateFailed:
		if !d.Touched() {
			// Refused before touching anything (min_in_service), as a
			// cluster deploy reports it too.
			return withCode(exitUsage, fmt.Errorf("deployment %s: %s", st, d.Error))
		}
		return withCode(exitFailed, fmt.Errorf("deployment %s: %s", st, d.Error))
	default:
		return withCode(exitFailed, fmt.Errorf("deployment %s: %s", st, d.Error))
	}
}

// submitWaiting submits req; while its hosts are held by another running
// deployment it tries again until lockWait has passed.
func submitWaiting(ctx context.Context, cl *api.Client, v *view, req api.SubmitRequest, lockWait time.Duration) (string, error) {
	deadline := time.Now().Add(lockWait)
	noted := false
	for {
		id, err := cl.Submit(ctx, req)
		if err == nil || !errors.Is(err, api.ErrConflict) || !time.Now().Before(deadline) {
			return id, err
		}
		if !noted {
			v.note(fmt.Sprintf("waiting up to %s for held hosts: %v", lockWait, err))
			noted = true
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(min(time.Second, time.Until(deadline))):
		}
	}
}

// localUser is who runs a local deploy, as history shows it: "local
// USER@HOST".
func localUser() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return "local " + name + "@" + host
}

// openLocal opens the embedded coordinator's store in the data dir; inUse
// says what to do when another drover holds it.
func openLocal(ctx context.Context, g *globalFlags, inUse string) (*raftstore.Store, error) {
	if g.dataDirNote != "" {
		fmt.Fprintln(os.Stderr, "drover:", g.dataDirNote)
	}
	st, err := raftstore.OpenSingle(ctx, raftstore.Options{Dir: g.dataDir})
	if errors.Is(err, raftstore.ErrDataDirInUse) {
		return nil, withCode(exitUsage, fmt.Errorf("%w (%s)", err, inUse))
	}
	if err != nil {
		return nil, withCode(exitFailed, err)
	}
	return st, nil
}
