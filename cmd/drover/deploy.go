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
			s := submission{file: args[0], set: set, force: force, message: message, lockWait: lockWait, ui: uiAddr}
			if runsHere(g) && !detach {
				// Connect, run the preflight's reads and checksum while the
				// store opens and the deployment is recorded.
				if err := s.warmUp(); err != nil {
					return err
				}
				defer s.warm.Close()
			}
			return withControl(cmd.Context(), g, func(ctx context.Context, ctl control) error {
				if detach && ctl.driver() != deploy.Supervised {
					return withCode(exitUsage, errors.New("--detach needs a coordinator cluster (--server): here the deploy runs in this process"))
				}
				id, err := ctl.submit(ctx, s)
				if err != nil {
					return err
				}
				if detach {
					if g.output == "json" {
						d, err := ctl.get(ctx, id)
						if err != nil {
							return err
						}
						return writeJSON(os.Stdout, statusJSON(nil, nil, d))
					}
					fmt.Println(id)
					return nil
				}
				return ctl.follow(ctx, id)
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

// submission is what 'drover deploy' asks for.
type submission struct {
	file     string   // the plan
	set      []string // --set KEY=VALUE
	force    bool
	message  string
	lockWait time.Duration // a cluster: how long to wait for held hosts
	ui       string        // the embedded coordinator: serve the dashboard here
	// plan and warm: the plan loaded here and its warm-up, when this
	// process runs the deployment (warmUp).
	plan *plans.Plan
	warm *orchestrator.Warm
}

// warmUp loads the plan for a deploy that this process runs (with
// FILE:LINE:COL errors) and starts connecting, the preflight's reads and
// the checksum: nothing on a host changes until the run's preflight has
// judged every host.
func (s *submission) warmUp() error {
	opts, err := planOptions(s.set)
	if err != nil {
		return err
	}
	// This process sends the webhooks of a local deploy.
	opts.SenderEnv, opts.Sender = os.LookupEnv, "this drover process"
	if s.plan, err = plans.LoadWith(s.file, opts, plans.Files{}); err != nil {
		return withCode(exitUsage, err)
	}
	s.warm = orchestrator.StartWarm(s.plan, orchestrator.SSHConnector, orchestrator.HAProxyBalancer)
	return nil
}

// submit validates the plan here (with FILE:LINE:COL errors), uploads the
// artifact to the cluster and submits the plan's text with the values of
// its variables and --set.
func (r remote) submit(ctx context.Context, s submission) (string, error) {
	if s.ui != "" {
		return "", withCode(exitUsage, errors.New("--ui serves the dashboard of a deploy run here; a cluster serves its own (/ui/ on any coordinator)"))
	}
	v, err := newView(os.Stdout, r.g.output)
	if err != nil {
		return "", withCode(exitUsage, err)
	}
	data, err := os.ReadFile(s.file)
	if err != nil {
		return "", withCode(exitUsage, err)
	}
	opts, err := planOptions(s.set)
	if err != nil {
		return "", err
	}
	// The coordinators read the SSH key files, not this machine.
	p, err := plans.ParseWith(s.file, data, opts, plans.Files{SkipCoordinatorFiles: true})
	if err != nil {
		return "", withCode(exitUsage, err)
	}
	req := api.SubmitRequest{Force: s.force, Message: s.message, Vars: envVars(p), Set: opts.Set}
	if r.embedded {
		// Another drover process runs a deployment on this data dir: it
		// says why this one cannot run now (no upload needed to hear it).
		req.PlanName, req.Plan = s.file, string(data)
		_, err := r.cl.Submit(ctx, req)
		if err == nil {
			err = errors.New("the embedded coordinator accepted a deployment it cannot run")
		}
		return "", err
	}
	art, err := orchestrator.InspectArtifact(p.Release.Artifact, p.Release.StripComponents)
	if err != nil {
		return "", withCode(exitUsage, err)
	}
	if err := r.cl.UploadArtifact(ctx, art.SHA256, func() (io.ReadCloser, error) { return os.Open(art.Path) }); err != nil {
		return "", apiError(fmt.Errorf("upload %s: %w", art.Path, err))
	}
	req.PlanName, req.Plan, req.ArtifactSHA256 = s.file, string(data), art.SHA256
	id, err := submitWaiting(ctx, r.cl, v, req, s.lockWait)
	return id, apiError(err)
}

// submit records the plan's deployment in the embedded coordinator, with
// its warm-up (warmUp) when the command started one.
func (c *local) submit(ctx context.Context, s submission) (string, error) {
	if s.plan == nil {
		if err := s.warmUp(); err != nil {
			return "", err
		}
		c.atExit(s.warm.Close)
	}
	if s.ui != "" {
		stop, err := serveDashboard(ctx, c.store, s.ui, os.Stderr)
		if err != nil {
			return "", withCode(exitUsage, err)
		}
		c.atExit(stop)
	}
	id, err := c.engine.Submit(ctx, s.plan, orchestrator.SubmitOptions{Force: s.force, Warm: s.warm, By: localUser(), Message: s.message})
	if err != nil {
		return "", withCode(exitUsage, submitError(err))
	}
	return id, nil
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
	// opened is the store's Seq when this process opened it: the view
	// shows what was recorded since (a deploy's creation, a resume).
	opened uint64
	// exits run when the command is done with the coordinator, last first.
	exits []func()
	dir   string // the data dir
}

// atExit runs f when the command is done with the embedded coordinator.
func (c *local) atExit(f func()) { c.exits = append(c.exits, f) }

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
	c := &local{store: st, view: v, dir: g.dataDir}
	_, c.opened = st.Events("", ^uint64(0))
	// The view shows what the engine records, as a cluster client does.
	c.engine = orchestrator.New(orchestrator.DefaultDeps(st, nil))
	defer sendWebhooks(ctx, st)()
	defer func() {
		for i := len(c.exits) - 1; i >= 0; i-- {
			c.exits[i]()
		}
	}()
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

	d, err := c.store.Deployment(id)
	if err != nil {
		return withCode(exitUsage, err)
	}
	c.view.begin(d)
	// Other drover commands on this data dir reach this run meanwhile.
	defer c.serve(c.dir, id)()
	fctx, stopFollow := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() { defer close(followed); followLocal(fctx, c.store, c.view, id, c.opened) }()
	st, runErr := c.engine.Run(ctx, stop, id)
	stopFollow()
	<-followed
	d, err = c.store.Deployment(id)
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
