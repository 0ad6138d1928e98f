package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/oneline"
	"github.com/drover-dev/drover/plans"
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

With --watch, a running deployment is followed live until it ends, as
'drover deploy' shows it: one that a coordinator cluster runs (from any
machine, after a detach, a failover or a lost terminal), or a local deploy
running in another terminal on the same data dir (which serves this command
on the data dir's socket).`,
		Example: `  drover status
  drover status web-20261129-101500-1a2b -o json | jq '.hosts[] | {name, stage, runs}'
  DROVER_ADDR=10.0.0.5:7443 drover status --watch`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeIDs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withControl(cmd.Context(), g, func(ctx context.Context, ctl control) error {
				d, err := ctl.pick(ctx, args, func(deploy.Deployment) bool { return true })
				if err != nil {
					return err
				}
				if watch && !d.State.Terminal() && d.State != deploy.StatePaused {
					if ctl.driver() != deploy.Supervised {
						return withCode(exitUsage, fmt.Errorf("--watch follows a running deployment; no drover process runs %s now (it was interrupted): continue it with 'drover resume %s'", d.ID, d.ID))
					}
					return ctl.follow(ctx, d.ID)
				}
				if err := showDeployment(ctx, os.Stdout, g.output, ctl.records(), d); err != nil || g.output == "json" {
					return err
				}
				printFailures(ctx, os.Stdout, ctl, d)
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow a running cluster deployment live until it ends")
	return cmd
}

func newHistoryCmd(g *globalFlags) *cobra.Command {
	limit := 20
	var all bool
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List deployments, newest first",
		Long: `List deployments, newest first: the last --limit of them (0 for every one
kept). The state keeps every running or paused deployment and the last finished
ones (drover server --keep-deployments, default 100).

A deployment refused before it changed anything on any host (its preflight
failed) is not listed unless --all is given; then its state reads "refused".
-o json lists them all the same, each refused one marked "refused": true.`,
		Example: `  drover history
  drover history --all --limit 0
  drover history -o json | jq -r '.[] | select(.refused | not) | [.id, .state, .duration_seconds] | @tsv'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return withCode(exitUsage, fmt.Errorf("--limit %d: want 0 (all) or more", limit))
			}
			return withControl(cmd.Context(), g, func(ctx context.Context, ctl control) error {
				if g.output == "json" {
					ds, err := ctl.newest(ctx, limit)
					if err != nil {
						return err
					}
					return writeJSON(os.Stdout, historyJSON(ds))
				}
				ds, hidden, err := listed(ctx, ctl, limit, all)
				if err != nil {
					return err
				}
				return printHistory(os.Stdout, ds, hidden, time.Now())
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", limit, "show the newest N deployments; 0 shows every one kept")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "also list deployments refused before they changed any host (failed preflights)")
	return cmd
}

// listed is what history shows: the newest n deployments (oldest first),
// without the refused ones unless all; hidden counts those left out.
func listed(ctx context.Context, ctl control, n int, all bool) (ds []deploy.Deployment, hidden int, err error) {
	if ds, err = ctl.newest(ctx, n); err != nil || all {
		return ds, 0, err
	}
	kept := shown(ds)
	if len(kept) < len(ds) && len(ds) == n {
		// Refused ones took places among the newest n: look further back.
		if ds, err = ctl.newest(ctx, 0); err != nil {
			return nil, 0, err
		}
		kept = shown(ds)
	}
	hidden = len(ds) - len(kept)
	return newest(kept, n), hidden, nil
}

// shown drops the refused deployments of ds.
func shown(ds []deploy.Deployment) []deploy.Deployment {
	var out []deploy.Deployment
	for _, d := range ds {
		if !d.Refused() {
			out = append(out, d)
		}
	}
	return out
}

// newest keeps the last n of ds (oldest first); n == 0 keeps all.
func newest(ds []deploy.Deployment, n int) []deploy.Deployment {
	if n > 0 && len(ds) > n {
		return ds[len(ds)-n:]
	}
	return ds
}

// printHistory lists ds newest first; hidden refused ones are counted
// below the table.
func printHistory(w io.Writer, ds []deploy.Deployment, hidden int, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tKIND\tFROM\tVERSION\tSTATE\tHOSTS\tSTARTED\tDURATION\tBY")
	for i := len(ds) - 1; i >= 0; i-- {
		d := ds[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.Kind, orNone(fromVersion(d)), d.Version, stateText(d),
			len(d.Hosts), ago(d.Created, now), duration(d), orNone(d.By))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if hidden > 0 {
		_, err := fmt.Fprintf(w, "(%d refused before changing any host not shown: drover history --all)\n", hidden)
		return err
	}
	return nil
}

// stateText is d's state in text output: "refused" for a deployment that
// failed without changing any host (deploy.Deployment.Refused).
func stateText(d deploy.Deployment) string {
	if d.Refused() {
		return "refused"
	}
	return string(d.State)
}

func newRollbackCmd(g *globalFlags) *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "rollback [ID] [--to VERSION]",
		Short: "Take the hosts of a finished deployment back to their previous release, or to any release they keep",
		Long: `Take every host that still runs what deployment ID installed back to the
stable release it had before, through the same pipeline (drain, activate the
old release, verify, enable), batch by batch. Default: the latest deployment.
A host whose previous release is unknown (its first deploy) is not guessed at.

With --to VERSION, every host of ID's plan that does not run VERSION goes to it:
any release still kept on the hosts (release.keep of them per host, see
docs/plan.md), verified as it was when it was deployed. When a host does not
keep VERSION, the rollback is refused before anything is touched, with the
releases every host keeps.`,
		Example: `  drover rollback
  drover rollback web-20261129-101500-1a2b
  drover rollback --to 2.0.1`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeIDs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("to") && strings.TrimSpace(to) == "" {
				return withCode(exitUsage, fmt.Errorf("--to: want a release version"))
			}
			return withControl(cmd.Context(), g, func(ctx context.Context, ctl control) error {
				d, err := ctl.pick(ctx, args, rollbackDefault)
				if err != nil {
					return err
				}
				id, err := ctl.rollback(ctx, d.ID, to)
				if err != nil {
					return err
				}
				return ctl.follow(ctx, id)
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the release to go back to (one every host still keeps); default: each host's previous release")
	return cmd
}

// rollbackDefault is what a rollback without an ID takes back: the newest
// finished deploy that changed hosts (one refused at preflight changed
// none: there is nothing of it to take back).
func rollbackDefault(d deploy.Deployment) bool {
	return d.Kind == deploy.KindDeploy && d.State.Terminal() && !d.Refused()
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
				return abort(ctx, ctl, args[0], os.Stdout, g.output)
			})
		},
	}
}

// showDeployment prints d as status does: text with each host's state on
// the load balancer(s), or (output json) the deployment's JSON.
func showDeployment(ctx context.Context, w io.Writer, output string, st hostRecords, d deploy.Deployment) error {
	if output == "json" {
		lb, _ := lbStates(ctx, d) // unreadable: every host "?"
		return writeJSON(w, statusJSON(st, lb, d))
	}
	printWithLB(ctx, w, st, d)
	return nil
}

// abort ends deployment id now, showing where every host was left, or
// requests its end at its engine's next safe point (deploy.AbortNow).
func abort(ctx context.Context, ctl control, id string, w io.Writer, output string) error {
	d, err := ctl.get(ctx, id)
	if err != nil {
		return err
	}
	now := deploy.AbortNow(&d, ctl.driver())
	if err := ctl.act(ctx, d.ID, deploy.ActionAbort); err != nil {
		return err
	}
	if !now && output != "json" {
		fmt.Fprintf(w, "abort requested: %s stops at the next safe point (hosts in flight finish) and releases its hosts\n", d.ID)
		return nil
	}
	if d, err = ctl.get(ctx, d.ID); err != nil {
		return err
	}
	return showDeployment(ctx, w, output, ctl.records(), d)
}

func newPauseCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "pause ID",
		Short: "Pause a running deployment at the next safe point",
		Long: `Ask the engine running a deployment to pause it: no new host is started,
hosts in flight finish their pipeline and go back into rotation, and the
deployment is recorded as paused. 'drover resume ID' continues it. (Ctrl-C
in the terminal of a foreground 'drover deploy' does the same.)`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withControl(cmd.Context(), g, func(ctx context.Context, ctl control) error {
				if err := ctl.act(ctx, args[0], deploy.ActionPause); err != nil {
					return err
				}
				if g.output == "json" {
					d, err := ctl.get(ctx, args[0])
					if err != nil {
						return err
					}
					return writeJSON(os.Stdout, statusJSON(nil, nil, d))
				}
				fmt.Printf("pause requested: %s stops at the next safe point\n", args[0])
				return nil
			})
		},
	}
}

// watchNew follows a deployment of r.
func watchNew(ctx context.Context, r remote, id string) error {
	v, err := newView(os.Stdout, r.g.output)
	if err != nil {
		return withCode(exitUsage, err)
	}
	sigctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return watch(sigctx, r, v, id)
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
	fmt.Fprintf(w, "state:     %s", stateText(d))
	if d.Refused() {
		fmt.Fprint(w, " (failed before changing any host)")
	}
	if d.State == deploy.StateRunning || d.State == deploy.StatePaused {
		fmt.Fprintf(w, " (batch %d of %d)", min(d.OpenBatch(), len(d.Batches)-1)+1, len(d.Batches))
	}
	if d.Weights != nil {
		fmt.Fprintf(w, " (canary at %s%% of the traffic: weights %s, each back to %s at its end)",
			plans.FormatShare(d.Weights.Share), deploy.FormatWeights(d.Weights.Set), deploy.FormatWeights(d.Weights.Restore))
	}
	fmt.Fprintf(w, "\nstarted:   %s (%s)", clock(d.Created), ago(d.Created, time.Now()))
	if d.State.Terminal() {
		// How long it ran, as the deploy that ran it said at its end.
		fmt.Fprintf(w, ", ran %s", duration(d))
	}
	fmt.Fprintln(w)
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
