package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
)

// ledgerControl is a control over a plain deploy.Ledger: the lifecycle
// rules are the real ones (deploy.Decide), only the transport is missing.
type ledgerControl struct {
	l  deploy.Ledger
	by deploy.Driver
}

func (c *ledgerControl) driver() deploy.Driver { return c.by }
func (c *ledgerControl) get(_ context.Context, id string) (deploy.Deployment, error) {
	d := c.l.Deployments[id]
	if d == nil {
		return deploy.Deployment{}, deploy.ErrUnknownDeployment
	}
	return d.Clone(), nil
}
func (c *ledgerControl) pick(ctx context.Context, args []string, _ func(deploy.Deployment) bool) (deploy.Deployment, error) {
	return c.get(ctx, args[0])
}
func (c *ledgerControl) newest(context.Context, int) ([]deploy.Deployment, error) { return nil, nil }
func (c *ledgerControl) records() hostRecords                                     { return nil }
func (c *ledgerControl) act(ctx context.Context, id string, a deploy.Action) error {
	d, err := c.get(ctx, id)
	if err != nil {
		return err
	}
	cmd, err := deploy.Decide(&d, a, c.by, time.Now().UTC())
	if err != nil {
		return err
	}
	return c.l.Apply(cmd)
}
func (c *ledgerControl) rollback(context.Context, string, string) (string, error) { return "", nil }
func (c *ledgerControl) logs(_ context.Context, q deploy.LogQuery) (deploy.LogPage, error) {
	return c.l.LogsOf(q)
}
func (c *ledgerControl) submit(context.Context, submission) (string, error) { return "", nil }
func (c *ledgerControl) repair(context.Context, []string) (string, []string, error) {
	return "", nil, nil
}
func (c *ledgerControl) follow(context.Context, string) error { return nil }

// abort says what happened: a deployment that ended at once (paused, or
// nothing drives it) is shown as aborted; one that its engine runs is
// told to stop at its next safe point. (A cluster's paused deployment
// used to get "stops at the next safe point" although it had ended.)
func TestAbortOutput(t *testing.T) {
	tests := []struct {
		name   string
		state  deploy.DeploymentState
		by     deploy.Driver
		want   string
		wantSt deploy.DeploymentState
	}{
		{"cluster, running", deploy.StateRunning, deploy.Supervised, "abort requested: d1 stops at the next safe point", deploy.StateRunning},
		{"cluster, paused", deploy.StatePaused, deploy.Supervised, "state:     aborted", deploy.StateAborted},
		{"embedded, interrupted", deploy.StateRunning, deploy.Unattended, "state:     aborted", deploy.StateAborted},
		{"embedded, paused", deploy.StatePaused, deploy.Unattended, "state:     aborted", deploy.StateAborted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &ledgerControl{l: deploy.NewLedger(), by: tc.by}
			cmds := []deploy.Command{&deploy.CreateDeployment{Deployment: deploy.Deployment{ID: "d1", Name: "web", Version: "v2",
				Kind: deploy.KindDeploy, Batches: [][]string{{"web1"}}}}}
			if tc.state == deploy.StatePaused {
				cmds = append(cmds, &deploy.SetState{ID: "d1", State: deploy.StatePaused})
			}
			for _, cmd := range cmds {
				if err := c.l.Apply(cmd); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			if err := abort(context.Background(), c, "d1", &out, "text"); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("output:\n%s\nwant %q", out.String(), tc.want)
			}
			if st := c.l.Deployments["d1"].State; st != tc.wantSt {
				t.Errorf("state %s, want %s", st, tc.wantSt)
			}
		})
	}
}
