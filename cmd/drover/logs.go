package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/spf13/cobra"
)

// logStages are the stages whose commands print: preflight's probes are
// recorded under pending, and prune under done (verify's health probes are
// events, not recorded output).
var logStages = []deploy.Stage{deploy.StagePending, deploy.StageDrain, deploy.StageInstall, deploy.StageActivate,
	deploy.StageEnable, deploy.StageDone}

// followEvery is how often --follow asks for new lines.
const followEvery = 300 * time.Millisecond

func newLogsCmd(g *globalFlags) *cobra.Command {
	var (
		stage, stream string
		follow        bool
	)
	cmd := &cobra.Command{
		Use:   "logs ID [HOST]",
		Short: "Show what the remote commands of a deployment printed",
		Long: `Show the output of every command a deployment ran on its hosts (unpack,
restart, hooks...), stdout and stderr kept apart, each line with the time it was
printed. The output is kept with the deployment, in the replicated state of a
cluster (it survives the loss of the leader) or in the local data dir: the last
64 KiB per host, stage and stream, for the 20 newest deployments. Values of the
plan's secrets: (NAME=value, and the values this coordinator's environment
holds) are blanked before anything is recorded.

drover's own probes (preflight, "is the release there") are recorded only when
they fail. --follow prints lines as they come and returns when the deployment
ends. With -o json: one object {lines, next, cut}; with --follow, one line
object per line (JSON Lines).`,
		Example: `  drover logs web-20261129-101500-1a2b
  drover logs web-20261129-101500-1a2b web1 --stage activate
  drover logs web-20261129-101500-1a2b --follow
  drover logs web-20261129-101500-1a2b web1 -o json | jq -r '.lines[] | select(.stream == "stderr") | .text'`,
		Args: cobra.RangeArgs(1, 2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			return completeIDsAndHosts(cmd, g, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			q := deploy.LogQuery{ID: args[0], Stage: deploy.Stage(stage)}
			if q.Stage != "" && !slices.Contains(logStages, q.Stage) {
				return withCode(exitUsage, fmt.Errorf("--stage %s: want one of %s", stage, joinStages(logStages)))
			}
			if stream != "" && stream != string(deploy.Stdout) && stream != string(deploy.Stderr) {
				return withCode(exitUsage, fmt.Errorf("--stream %s: want stdout or stderr", stream))
			}
			return withControl(cmd.Context(), g, func(ctx context.Context, ctl control) error {
				d, err := ctl.get(ctx, q.ID)
				if err != nil {
					return err
				}
				if len(args) == 2 {
					q.Host = args[1]
					if d.Hosts[q.Host] == nil {
						return withCode(exitUsage, fmt.Errorf("%s is not a host of %s (its hosts: %s)", q.Host, d.ID, strings.Join(d.HostNames(), ", ")))
					}
				}
				w := &logWriter{w: os.Stdout, json: g.output == "json", stream: deploy.Stream(stream)}
				if !follow {
					p, err := ctl.logs(ctx, q)
					if err != nil {
						return err
					}
					return w.page(p, d)
				}
				return followLogs(ctx, ctl, q, w)
			})
		},
	}
	cmd.Flags().StringVar(&stage, "stage", "", "only this stage's commands: "+joinStages(logStages))
	cmd.Flags().StringVar(&stream, "stream", "", "only stdout or only stderr")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "print lines as they come, until the deployment ends")
	_ = cmd.RegisterFlagCompletionFunc("stage", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		var out []string
		for _, s := range logStages {
			out = append(out, string(s))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("stream", cobra.FixedCompletions([]string{"stdout", "stderr"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// followLogs prints q's lines as they are recorded until the deployment
// has ended and every line it recorded is printed.
func followLogs(ctx context.Context, ctl control, q deploy.LogQuery, w *logWriter) error {
	t := time.NewTicker(followEvery)
	defer t.Stop()
	for {
		// Read the state before the lines: once it has ended, the lines
		// read after it are all there will be.
		d, err := ctl.get(ctx, q.ID)
		if err != nil {
			return err
		}
		p, err := ctl.logs(ctx, q)
		if err != nil {
			return err
		}
		if err := w.lines(p.Lines); err != nil {
			return err
		}
		q.After = p.Next
		if d.State.Terminal() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// logWriter prints log lines: as text, a header each time the host, stage
// or command changes, then "TIME STREAM TEXT" per line; or as JSON.
type logWriter struct {
	w      io.Writer
	json   bool
	stream deploy.Stream // only this one, when set
	last   string        // the header printed last
}

// page prints a whole answer.
func (lw *logWriter) page(p deploy.LogPage, d deploy.Deployment) error {
	if lw.stream != "" {
		p.Lines = slices.DeleteFunc(p.Lines, func(ln deploy.LogLine) bool { return ln.Stream != lw.stream })
	}
	if lw.json {
		return writeJSON(lw.w, p)
	}
	if len(p.Lines) == 0 {
		fmt.Fprintf(lw.w, "no recorded output for %s (%s); drover records the output of its commands on the hosts, and its own probes only when they fail\n", d.ID, d.State)
	}
	for _, st := range []deploy.Stream{deploy.Stdout, deploy.Stderr} {
		if n := p.Cut[st]; n > 0 {
			fmt.Fprintf(lw.w, "(%d bytes of %s cut: the last %d KiB per host, stage and stream are kept)\n", n, st, deploy.MaxLogStreamBytes>>10)
		}
	}
	return lw.lines(p.Lines)
}

// lines prints lines one by one (JSON: one object each).
func (lw *logWriter) lines(lines []deploy.LogLine) error {
	for _, ln := range lines {
		if lw.stream != "" && ln.Stream != lw.stream {
			continue
		}
		if lw.json {
			if err := json.NewEncoder(lw.w).Encode(ln); err != nil {
				return err
			}
			continue
		}
		if h := logHeader(ln); h != lw.last {
			fmt.Fprintln(lw.w, h)
			lw.last = h
		}
		if _, err := fmt.Fprintln(lw.w, "  "+logLine(ln)); err != nil {
			return err
		}
	}
	return nil
}

// logHeader names where a line comes from: host, stage, phase, command.
func logHeader(ln deploy.LogLine) string {
	h := "== " + ln.Host + " " + string(ln.Stage)
	if ln.Phase == deploy.PhaseRollback {
		h += " (rollback)"
	}
	if ln.Command != "" {
		h += ": " + ln.Command
	}
	return h
}

// logLine is one line as text: local clock time to the millisecond, the
// stream, the text.
func logLine(ln deploy.LogLine) string {
	return fmt.Sprintf("%s %-6s %s", ln.At.Local().Format("15:04:05.000"), ln.Stream, ln.Text)
}

func joinStages(ss []deploy.Stage) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return strings.Join(out, ", ")
}

// maxFailureLines is how many of a failed host's last lines status shows.
const maxFailureLines = 10

// printFailures shows, for each failed host of d, the command that failed
// and its last lines, from the recorded output (nothing when there is none:
// a failure that was not a command's, or output no longer kept).
func printFailures(ctx context.Context, w io.Writer, ctl control, d deploy.Deployment) {
	for _, h := range d.HostNames() {
		hp := d.Hosts[h]
		if hp.Error == "" {
			continue
		}
		p, err := ctl.logs(ctx, deploy.LogQuery{ID: d.ID, Host: h})
		if err != nil || len(p.Lines) == 0 {
			continue
		}
		// The failing command is the one the error names (its stage and
		// description), else the last one that printed: a rollback may
		// have run others since.
		last := p.Lines[len(p.Lines)-1]
		for _, ln := range slices.Backward(p.Lines) {
			if ln.Command != "" && strings.Contains(hp.Error, string(ln.Stage)+": "+ln.Command) {
				last = ln
				break
			}
		}
		var lines []deploy.LogLine
		for _, ln := range p.Lines {
			if ln.Stage == last.Stage && ln.Command == last.Command && ln.Phase == last.Phase {
				lines = append(lines, ln)
			}
		}
		fmt.Fprintf(w, "\n%s: %s\n", h, strings.TrimPrefix(hp.Error, h+": "))
		fmt.Fprintf(w, "  last output of %s, %s:\n", last.Stage, last.Command)
		for _, ln := range lines[max(0, len(lines)-maxFailureLines):] {
			fmt.Fprintln(w, "    "+logLine(ln))
		}
		fmt.Fprintf(w, "  (all of it: drover logs %s %s --stage %s)\n", d.ID, h, last.Stage)
	}
}

// completeIDsAndHosts offers deployment IDs (newest first) for the first
// argument and the deployment's hosts for the second.
func completeIDsAndHosts(cmd *cobra.Command, g *globalFlags, args []string) ([]string, cobra.ShellCompDirective) {
	var out []string
	_ = withControl(cmd.Context(), g, func(ctx context.Context, ctl control) error {
		switch len(args) {
		case 0:
			ds, err := ctl.newest(ctx, 50)
			if err != nil {
				return err
			}
			for i := len(ds) - 1; i >= 0; i-- {
				out = append(out, ds[i].ID+"\t"+string(ds[i].Kind)+" "+ds[i].Version+" "+string(ds[i].State))
			}
		case 1:
			d, err := ctl.get(ctx, args[0])
			if err != nil {
				return err
			}
			out = d.HostNames()
		}
		return nil
	})
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeIDs offers deployment IDs for a command's one ID argument.
func completeIDs(g *globalFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return completeIDsAndHosts(cmd, g, args)
	}
}
