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
func watch(ctx context.Context, r remote, v *view, id string) error {
	cl := r.cl
	d, err := cl.Deployment(ctx, id)
	if err != nil {
		return err
	}
	v.begin(d)
	seen := d // its state as the events tell it
	var last uint64
	for noted := false; ; {
		err = cl.Watch(ctx, id, last, func(ev deploy.Event) error {
			last = ev.Seq
			v.record(ev)
			if ev.Kind == deploy.EvState {
				seen.State = ev.State
				if ev.Error != "" {
					seen.Error = ev.Error
				}
			}
			if r.embedded && ev.Kind == deploy.EvState && ev.State == deploy.StatePaused {
				// The drover process that ran it stops there.
				return errEndOfRun
			}
			return nil
		})
		// The deployment lives in the cluster, not in this watcher: when no
		// coordinator answers for a while (all restarting), keep trying.
		if !errors.Is(err, api.ErrUnavailable) || ctx.Err() != nil {
			break
		}
		if r.embedded {
			// The drover process that ran it is gone (interrupted, or
			// it ended paused): nothing will answer again.
			if seen.State.Terminal() || seen.State == deploy.StatePaused {
				return exitFor(seen)
			}
			return withCode(exitPaused, fmt.Errorf("the drover process running %s stopped; see 'drover status %s'", id, id))
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
	if ctx.Err() != nil && r.embedded {
		v.note(fmt.Sprintf("stopped watching; %s goes on in the drover process that runs it", id))
		return withCode(exitPaused, errors.New("detached"))
	}
	if ctx.Err() != nil {
		v.note(fmt.Sprintf("stopped watching; %s goes on in the cluster ('drover status %s', 'drover pause %s')", id, id, id))
		return withCode(exitPaused, errors.New("detached"))
	}
	if err != nil && !errors.Is(err, errEndOfRun) {
		return err
	}
	if r.embedded {
		// The drover process that ran it exits now: ask it briefly, else
		// go by the states its events said.
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if d, err = cl.Deployment(fctx, id); err != nil {
			return exitFor(seen)
		}
	} else if d, err = cl.Deployment(ctx, id); err != nil {
		return err
	}
	v.end(d)
	return exitFor(d)
}

// errEndOfRun ends watching a deployment that the drover process running
// it stopped running (paused).
var errEndOfRun = errors.New("the run ended")

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

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }
