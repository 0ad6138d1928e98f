package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/oneline"
	"github.com/spf13/cobra"
)

func newStatusCmd(g *globalFlags) *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "status [ID]",
		Short: "Show a deployment and each host's stage (default: the latest)",
		Long: `Show a deployment and each host's stage (default: the latest): its state, who
asked for it and why, and for each host the stage, the release it runs now and
its state on the load balancer(s).

With --watch, a deployment that a coordinator cluster runs is followed live
until it ends, as 'drover deploy' shows it (from any machine, after a detach,
a failover or a lost terminal), then shown.`,
		Example: `  drover status
  drover status web-20261129-101500-1a2b -o json | jq '.hosts[] | {name, stage, runs}'
  DROVER_ADDR=10.0.0.5:7443 drover status --watch`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withControl(cmd.Context(), g, func(ctx context.Context, ctl control) error {
				d, err := ctl.pick(ctx, args, func(deploy.Deployment) bool { return true })
				if err != nil {
					return err
				}
				if watch && !d.State.Terminal() && d.State != deploy.StatePaused {
					if ctl.driver() != deploy.Supervised {
						return withCode(exitUsage, fmt.Errorf("--watch follows a deployment that a coordinator cluster runs (--server); %s is shown live by the drover that runs it here, or continued with 'drover resume %s'", d.ID, d.ID))
					}
					return ctl.follow(ctx, d.ID)
				}
				if g.output == "json" {
					lb, _ := lbStates(ctx, d) // unreadable: every host "?"
					return writeJSON(os.Stdout, statusJSON(ctl.records(), lb, d))
				}
				printWithLB(ctx, os.Stdout, ctl.records(), d)
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow a running cluster deployment live until it ends")
	return cmd
}

func newHistoryCmd(g *globalFlags) *cobra.Command {
	limit := 20
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List deployments, newest first",
		Long: `List deployments, newest first: the last --limit of them (0 for every one
kept). The state keeps every running or paused deployment and the last finished
ones (drover server --keep-deployments, default 100).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return withCode(exitUsage, fmt.Errorf("--limit %d: want 0 (all) or more", limit))
			}
			return withControl(cmd.Context(), g, func(ctx context.Context, ctl control) error {
				ds, err := ctl.newest(ctx, limit)
				if err != nil {
					return err
				}
				if g.output == "json" {
					return writeJSON(os.Stdout, historyJSON(ds))
				}
				return printHistory(ds)
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", limit, "show the newest N deployments; 0 shows every one kept")
	return cmd
}

// newest keeps the last n of ds (oldest first); n == 0 keeps all.
func newest(ds []deploy.Deployment, n int) []deploy.Deployment {
	if n > 0 && len(ds) > n {
		return ds[len(ds)-n:]
	}
	return ds
}

func printHistory(ds []deploy.Deployment) error {
	tw := newTable(os.Stdout)
	fmt.Fprintln(tw, "ID\tKIND\tFROM\tVERSION\tSTATE\tHOSTS\tSTARTED\tDURATION\tBY")
	for i := len(ds) - 1; i >= 0; i-- {
		d := ds[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.Kind, orNone(fromVersion(d)), d.Version, d.State,
			len(d.Hosts), d.Created.Local().Format("2006-01-02 15:04:05"), duration(d), orNone(d.By))
	}
	return tw.Flush()
}

func newRollbackCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rollback [ID]",
		Short: "Take the hosts of a finished deployment back to their previous release",
		Long: `Take every host that still runs what deployment ID installed back to the
stable release it had before, through the same pipeline (drain, activate the
old release, verify, enable), batch by batch. Default: the latest deployment.
A host whose previous release is unknown (its first deploy) is not guessed at.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withControl(cmd.Context(), g, func(ctx context.Context, ctl control) error {
				d, err := ctl.pick(ctx, args, func(d deploy.Deployment) bool {
					return d.Kind == deploy.KindDeploy && d.State.Terminal()
				})
				if err != nil {
					return err
				}
				id, err := ctl.rollback(ctx, d.ID)
				if err != nil {
					return err
				}
				return ctl.follow(ctx, id)
			})
		},
	}
}

func newResumeCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "resume [ID]",
		Short: "Continue a paused or interrupted deployment where it stopped",
		Long: `Continue a deployment that was paused (Ctrl-C) or interrupted (the process
died). Hosts already done are not touched again; a host recorded in the middle
of a stage runs that stage again (every stage is safe to repeat).
Default: the only unfinished deployment.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withControl(cmd.Context(), g, func(ctx context.Context, ctl control) error {
				d, err := ctl.pick(ctx, args, func(d deploy.Deployment) bool { return deploy.Resumable(&d, ctl.driver()) })
				if err != nil {
					return err
				}
				if err := ctl.act(ctx, d.ID, deploy.ActionResume); err != nil {
					return err
				}
				return ctl.follow(ctx, d.ID)
			})
		},
	}
}

func newAbortCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "abort ID",
		Short: "End a paused or interrupted deployment where it stands and release its hosts",
		Long: `End a deployment that is not running (paused or interrupted) and release its
host locks, leaving every host as it is. Hosts left mid-stage (out of rotation)
are listed: 'drover rollback' or a new deploy brings them back.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withControl(cmd.Context(), g, func(ctx context.Context, ctl control) error {
				return abort(ctx, ctl, args[0], os.Stdout)
			})
		},
	}
}

// abort ends deployment id now, showing where every host was left, or
// requests its end at its engine's next safe point (deploy.AbortNow).
func abort(ctx context.Context, ctl control, id string, w io.Writer) error {
	d, err := ctl.get(ctx, id)
	if err != nil {
		return err
	}
	now := deploy.AbortNow(&d, ctl.driver())
	if err := ctl.act(ctx, d.ID, deploy.ActionAbort); err != nil {
		return err
	}
	if !now {
		fmt.Fprintf(w, "abort requested: %s stops at the next safe point (hosts in flight finish) and releases its hosts\n", d.ID)
		return nil
	}
	if d, err = ctl.get(ctx, d.ID); err != nil {
		return err
	}
	printWithLB(ctx, w, ctl.records(), d)
	return nil
}

func newPauseCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "pause ID",
		Short: "Pause a deployment running in a cluster at the next safe point",
		Long: `Ask the cluster to pause a running deployment: no new host is started, hosts
in flight finish their pipeline and go back into rotation, and the deployment
is recorded as paused. 'drover resume ID' continues it. (Without --server,
pause the foreground 'drover deploy' with Ctrl-C.)`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return requireCluster(cmd.Context(), &g.cluster, func(ctx context.Context, cl *api.Client) error {
				if err := cl.Act(ctx, args[0], api.ActionPause); err != nil {
					return err
				}
				fmt.Printf("pause requested: %s stops at the next safe point\n", args[0])
				return nil
			})
		},
	}
}

// watchNew follows a deployment the cluster just accepted.
func watchNew(ctx context.Context, cl *api.Client, g *globalFlags, id string) error {
	v, err := newView(os.Stdout, g.output)
	if err != nil {
		return withCode(exitUsage, err)
	}
	sigctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return watch(sigctx, cl, v, id)
}

func duration(d deploy.Deployment) string {
	return elapsed(d).Round(time.Millisecond).String()
}

// elapsed is how long d ran: to its end, or to its last change while it
// runs.
func elapsed(d deploy.Deployment) time.Duration {
	end := d.Ended
	if end.IsZero() {
		end = d.Updated
	}
	return end.Sub(d.Created)
}

// hostRecords knows what each host runs now; nil on a cluster client,
// which shows what the deployment itself recorded.
type hostRecords interface {
	HostRecord(name string) deploy.HostRecord
}

// printDeployment shows d; lb, when not nil, is each host's state on the
// load balancer(s) now, shown next to the release it runs.
func printDeployment(w io.Writer, st hostRecords, lb map[string]string, d deploy.Deployment) {
	fmt.Fprintf(w, "deployment %s (%s of %s %s)\n", d.ID, d.Kind, d.Name, d.Version)
	fmt.Fprintf(w, "state:     %s", d.State)
	if d.State == deploy.StateRunning || d.State == deploy.StatePaused {
		fmt.Fprintf(w, " (batch %d of %d)", min(d.OpenBatch(), len(d.Batches)-1)+1, len(d.Batches))
	}
	fmt.Fprintf(w, "\nstarted:   %s, %s\n", d.Created.Local().Format(time.RFC3339), duration(d))
	if from := fromVersion(d); from != "" {
		fmt.Fprintf(w, "from:      %s\n", from)
	}
	if d.By != "" {
		fmt.Fprintf(w, "by:        %s\n", d.By)
	}
	if d.Message != "" {
		fmt.Fprintf(w, "message:   %s\n", oneline.First(d.Message, 100))
	}
	if d.Error != "" {
		fmt.Fprintf(w, "reason:    %s\n", d.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	lbCol := ""
	if lb != nil {
		lbCol = "LOAD BALANCER\t"
	}
	fmt.Fprintf(tw, "BATCH\tHOST\tSTAGE\tPHASE\tTARGET\tNOW RUNS\t%sERROR\n", lbCol)
	for i, b := range d.Batches {
		for _, h := range b {
			hp := d.Hosts[h]
			now := hostRuns(st, h, hp)
			note := hp.Error
			if note == "" {
				note = hp.Skipped
			}
			lbState := ""
			if lb != nil {
				lbState = orNone(lb[h]) + "\t"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s%s\n", i+1, h, hp.Stage, hp.Phase, hp.Target, orNone(now), lbState, oneline.First(note, 100))
		}
	}
	tw.Flush()
}

// fromVersion is the release most of d's hosts ran before it ("" for a
// first deploy).
func fromVersion(d deploy.Deployment) string {
	var from []string
	for _, hp := range d.Hosts {
		from = append(from, hp.FromCurrent)
	}
	return mostCommon(from)
}

// hostRuns is what host name runs now: its record where there is one (st not
// nil), else what its deployment says ("?" when that cannot tell).
func hostRuns(st hostRecords, name string, hp *deploy.HostProgress) string {
	if st != nil {
		return st.HostRecord(name).Current
	}
	return nowRuns(hp)
}

// nowRuns is what a host runs according to its deployment alone.
func nowRuns(hp *deploy.HostProgress) string {
	switch {
	case hp.Stage == deploy.StageDone && hp.Phase == deploy.PhaseRollout:
		return hp.Target
	case !hp.Activated || hp.Phase == deploy.PhaseRollback && hp.Stage == deploy.StageDone:
		return hp.FromCurrent
	}
	return "?"
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
