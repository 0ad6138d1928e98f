package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/orchestrator"
	"github.com/spf13/cobra"
)

// clusterFlags say how to reach a cluster. Each has an environment
// variable, so that a shell or a CI job sets them once.
type clusterFlags struct {
	server    string // DROVER_ADDR
	tokenFile string // DROVER_TOKEN holds the token itself
	caFile    string // DROVER_CA
	certFile  string // DROVER_CLIENT_CERT
	keyFile   string // DROVER_CLIENT_KEY
}

func (f *clusterFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.server, "server", "", "coordinator API addresses, comma-separated host:port (env DROVER_ADDR); without it, an embedded single-node coordinator runs in --data-dir")
	pf.StringVar(&f.tokenFile, "token-file", "", "file holding the API token (env DROVER_TOKEN holds the token itself)")
	pf.StringVar(&f.caFile, "ca", "", "the cluster CA certificate (env DROVER_CA)")
	pf.StringVar(&f.certFile, "cert", "", "this client's certificate (env DROVER_CLIENT_CERT)")
	pf.StringVar(&f.keyFile, "key", "", "this client's key (env DROVER_CLIENT_KEY)")
}

func envOr(v, env string) string {
	if v != "" {
		return v
	}
	return os.Getenv(env)
}

// addrs returns the cluster addresses, or nil in embedded mode.
func (f *clusterFlags) addrs() ([]string, error) {
	s := envOr(f.server, "DROVER_ADDR")
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	a, err := api.ParseAddrs(s)
	if err != nil {
		return nil, withCode(exitUsage, fmt.Errorf("--server/DROVER_ADDR: %w", err))
	}
	return a, nil
}

// client connects to the cluster named by the flags.
func (f *clusterFlags) client(addrs []string) (*api.Client, error) {
	ca := envOr(f.caFile, "DROVER_CA")
	if ca == "" {
		return nil, withCode(exitUsage, errors.New("talking to a cluster needs its CA certificate: --ca or DROVER_CA (see 'drover tls --help')"))
	}
	paths := pki.Paths{CA: ca, Cert: envOr(f.certFile, "DROVER_CLIENT_CERT"), Key: envOr(f.keyFile, "DROVER_CLIENT_KEY")}
	if (paths.Cert == "") != (paths.Key == "") {
		return nil, withCode(exitUsage, errors.New("--cert and --key (DROVER_CLIENT_CERT, DROVER_CLIENT_KEY) go together"))
	}
	var tlsCfg *tls.Config
	tlsCfg, err := pki.ClientConfig(paths)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	token := os.Getenv("DROVER_TOKEN")
	if f.tokenFile != "" {
		if token, err = pki.ReadToken(f.tokenFile); err != nil {
			return nil, withCode(exitUsage, err)
		}
	}
	return api.NewClient(api.ClientConfig{Addrs: addrs, TLS: tlsCfg, Token: strings.TrimSpace(token), Timeout: 30 * time.Second})
}

// withCluster runs fn against the cluster when one is configured, and
// returns handled=false in embedded mode.
func withCluster(ctx context.Context, f *clusterFlags, fn func(context.Context, *api.Client) error) (handled bool, err error) {
	addrs, err := f.addrs()
	if err != nil || addrs == nil {
		return err != nil, err
	}
	cl, err := f.client(addrs)
	if err != nil {
		return true, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	return true, apiError(fn(ctx, cl))
}

// apiError gives an API failure its exit code and a hint.
func apiError(err error) error {
	var ee *exitError
	switch {
	case err == nil || errors.As(err, &ee):
		return err
	case errors.Is(err, api.ErrCertificateRequired):
		return withCode(exitUsage, fmt.Errorf("%w (set --cert/--key or DROVER_CLIENT_CERT/DROVER_CLIENT_KEY)", err))
	case errors.Is(err, api.ErrUnauthorized):
		return withCode(exitUsage, fmt.Errorf("%w (set DROVER_TOKEN or --token-file)", err))
	case errors.Is(err, api.ErrForbidden), errors.Is(err, api.ErrBadRequest), errors.Is(err, api.ErrNotFound):
		return withCode(exitUsage, err)
	case errors.Is(err, api.ErrConflict):
		return withCode(exitUsage, fmt.Errorf("%w\n(see 'drover status'; wait with --lock-wait, or end it with 'drover abort ID')", err))
	}
	return withCode(exitFailed, err)
}

// watch follows a deployment on the cluster until it ends, feeding the
// view, and turns its final state into an exit code. Ctrl-C stops
// watching only: the deployment goes on in the cluster.
func watch(ctx context.Context, cl *api.Client, v *view, id string) error {
	d, err := cl.Deployment(ctx, id)
	if err != nil {
		return err
	}
	v.begin(d)
	conv := newEventConverter(d)
	var last uint64
	for noted := false; ; {
		err = cl.Watch(ctx, id, last, func(ev deploy.Event) error {
			last = ev.Seq
			for _, e := range conv.convert(ev) {
				v.event(e)
			}
			return nil
		})
		// The deployment lives in the cluster, not in this watcher: when no
		// coordinator answers for a while (all restarting), keep trying.
		if !errors.Is(err, api.ErrUnavailable) || ctx.Err() != nil {
			break
		}
		if !noted {
			v.note("lost contact with the cluster; still trying (Ctrl-C stops watching, the deployment goes on)")
			noted = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	if ctx.Err() != nil {
		v.note(fmt.Sprintf("stopped watching; %s goes on in the cluster ('drover status %s', 'drover pause %s')", id, id, id))
		return withCode(exitPaused, errors.New("detached"))
	}
	if err != nil {
		return err
	}
	if d, err = cl.Deployment(ctx, id); err != nil {
		return err
	}
	v.end(d)
	return exitFor(d)
}

func exitFor(d deploy.Deployment) error {
	switch d.State {
	case deploy.StateSucceeded:
		return nil
	case deploy.StateRolledBack:
		return withCode(exitRolledBack, errors.New("deployment failed and was rolled back: "+d.Error))
	case deploy.StatePaused:
		return withCode(exitPaused, fmt.Errorf("paused; continue with 'drover resume %s'", d.ID))
	}
	if d.State == deploy.StateFailed && !d.Touched() {
		// Refused before touching anything (the preflight): as a local
		// deploy, that is exit 2.
		return withCode(exitUsage, fmt.Errorf("deployment %s: %s", d.State, d.Error))
	}
	return withCode(exitFailed, fmt.Errorf("deployment %s: %s", d.State, d.Error))
}

// eventConverter turns the replicated events into the engine's progress
// events, so that a cluster deploy shows like a local one.
type eventConverter struct {
	d       deploy.Deployment
	batchOf map[string]int
	opened  map[string]bool // batch (per phase) announced
	last    map[string]time.Time
	reached map[string]int // host/phase -> furthest stage seen (stageRank)
}

// rerun is how the view marks a stage the engine runs a second time: a
// new leader resumes a host from its last recorded stage, which the old
// leader may have begun.
const rerun = "re-run by the new leader"

// stageRank orders a host's pipeline stages (verify is not recorded).
var stageRank = map[deploy.Stage]int{
	deploy.StageDrain: 1, deploy.StageInstall: 2, deploy.StageActivate: 3,
	deploy.StageVerify: 4, deploy.StageEnable: 5,
}

func newEventConverter(d deploy.Deployment) *eventConverter {
	c := &eventConverter{d: d, batchOf: map[string]int{}, opened: map[string]bool{}, last: map[string]time.Time{}, reached: map[string]int{}}
	for i, b := range d.Batches {
		for _, h := range b {
			c.batchOf[h] = i
		}
	}
	return c
}

func (c *eventConverter) convert(ev deploy.Event) []orchestrator.Event {
	base := orchestrator.Event{Time: ev.Time, Deployment: ev.Deployment, Host: ev.Host, Phase: ev.Phase, Version: ev.Target}
	var out []orchestrator.Event
	switch ev.Kind {
	case deploy.EvCreated:
		base.Kind = orchestrator.EventStarted
		out = append(out, base)
	case deploy.EvRequest:
		base.Kind, base.Message = orchestrator.EventWarning, "operator asked to "+ev.Message
		out = append(out, base)
	case deploy.EvTrimmed:
		base.Kind, base.Message = orchestrator.EventWarning, ev.Message
		out = append(out, base)
	case deploy.EvGate:
		for _, s := range ev.Samples {
			e := base
			e.Kind, e.Batch, e.Sample, e.Message = orchestrator.EventGate, ev.Batch, &s, s.String()
			out = append(out, e)
		}
	case deploy.EvAnalysis:
		base.Kind, base.Batch, base.Batches, base.Message = orchestrator.EventAnalysis, ev.Batch, len(c.d.Batches), ev.Message
		out = append(out, base)
	case deploy.EvWeights:
		base.Kind, base.Weights, base.Share, base.Message = orchestrator.EventCanary, ev.Weights, ev.Share, ev.Message
		out = append(out, base)
	case deploy.EvState:
		switch {
		case ev.State == deploy.StateRollingBack:
			base.Kind, base.Message = orchestrator.EventRollback, ev.Error
		case ev.State == deploy.StatePaused:
			base.Kind, base.Message = orchestrator.EventPaused, "paused at a safe point; continue with 'drover resume "+ev.Deployment+"'"
		case ev.State.Terminal():
			base.Kind, base.State, base.Error = orchestrator.EventFinished, ev.State, ev.Error
		default:
			return nil
		}
		out = append(out, base)
	case deploy.EvStage:
		b := c.batchOf[ev.Host]
		key := fmt.Sprintf("%s/%d", ev.Phase, b)
		if ev.Stage != deploy.StagePending && ev.Stage != deploy.StageSkipped && !c.opened[key] {
			c.opened[key] = true
			out = append(out, orchestrator.Event{Time: ev.Time, Deployment: ev.Deployment, Kind: orchestrator.EventBatch,
				Batch: b + 1, Batches: len(c.d.Batches), Hosts: c.d.Batches[b], Phase: ev.Phase})
		}
		if t, ok := c.last[ev.Host]; ok {
			base.Elapsed = ev.Time.Sub(t)
		}
		c.last[ev.Host] = ev.Time
		switch ev.Stage {
		case deploy.StageDone:
			base.Kind = orchestrator.EventHostDone
		case deploy.StageFailed:
			base.Kind, base.Error, base.Output = orchestrator.EventHostFailed, ev.Error, ev.Output
		case deploy.StageSkipped:
			base.Kind, base.Message = orchestrator.EventHostSkipped, ev.Error
		case deploy.StagePending:
			return out
		default:
			base.Kind, base.Stage = orchestrator.EventStage, ev.Stage
			hk := ev.Host + "/" + string(ev.Phase)
			if r := stageRank[ev.Stage]; r > 0 {
				if r <= c.reached[hk] {
					base.Message = rerun
				}
				c.reached[hk] = max(c.reached[hk], r)
			}
		}
		out = append(out, base)
	}
	return out
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }
