// Command drover rolls releases across a fleet behind a load balancer, in
// batches, with health checks and automatic rollback.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/raftstore"
	"github.com/spf13/cobra"
)

// Exit codes are part of drover's interface: scripts and CI branch on them.
const (
	exitOK         = 0
	exitFailed     = 1
	exitUsage      = 2
	exitRolledBack = 3
	exitDamaged    = 4   // the data dir is damaged (raft.db): see damagedHelp
	exitPaused     = 130 // stopped by Ctrl-C at a safe point; `drover resume` continues
)

// damagedHelp is the way back from a damaged data dir, for a coordinator
// and for the embedded one.
const damagedHelp = `the node cannot start from this data dir. Move the data dir aside (keep it for
inspection) and then:
  - a cluster node: start it with an empty --data-dir and --join: it catches up
    from the other members; if no healthy member is left, start a new cluster
    and load your latest backup with 'drover cluster restore FILE' (docs/cluster.md);
  - the embedded coordinator (no --server): run again with an empty --data-dir;
    the deployment history kept there is lost, the hosts keep their releases`

// exitError carries an exit code up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &exitError{code: code, err: err} }

func main() {
	root := newRootCmd()
	err := root.Execute()
	if err == nil {
		return
	}
	code := exitUsage // cobra's own errors are usage errors
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if errors.Is(err, raftstore.ErrCorrupt) {
		code, err = exitDamaged, fmt.Errorf("%w\n%s", err, damagedHelp)
	}
	switch msg := err.Error(); {
	case msg == "":
	case errors.Is(err, plans.ErrInvalid):
		fmt.Fprintln(os.Stderr, msg) // already FILE:LINE:COL: lines, one per problem
	default:
		fmt.Fprintln(os.Stderr, "drover:", msg)
	}
	os.Exit(code)
}

type globalFlags struct {
	dataDir string
	// dataDirNote, when not empty, is told once the data dir is opened
	// (an earlier drover's ./.drover in use).
	dataDirNote string
	output      string
	cluster     clusterFlags
}

func newRootCmd() *cobra.Command { return newRoot(&globalFlags{}) }

// newRoot is the command tree, its global flags parsed into g.
func newRoot(g *globalFlags) *cobra.Command {
	root := &cobra.Command{
		Use:   "drover",
		Short: "Roll releases across a fleet behind a load balancer, safely",
		Long: `drover rolls a release out to a fleet of hosts in batches. For each host it
drains it from the load balancer, installs and activates the release, checks its
health, puts it back, and moves on. When a batch fails beyond the plan's budget
it rolls every touched host back to its previous release, automatically.

With --server (or DROVER_ADDR), commands go to a coordinator cluster ('drover
server'), authenticated by a client certificate and a token: DROVER_CA,
DROVER_CLIENT_CERT, DROVER_CLIENT_KEY, DROVER_TOKEN. Without it, drover runs an
embedded single-node coordinator whose replicated log lives in --data-dir
(DROVER_DATA_DIR; default ~/.local/state/drover), the same for every terminal
and folder of this user.

Defaults for these flags can live in ~/.config/drover/config.yaml (or the file
DROVER_CONFIG names): server, ca, cert, key, token_file, data_dir, output. A
flag beats its environment variable, which beats the file.

Exit codes: 0 deployed, 1 failed, 2 bad input or usage, 3 failed and rolled
back cleanly, 4 the data dir is damaged, 130 paused by Ctrl-C (continue with
'drover resume').`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       build().Version,
	}
	root.SetVersionTemplate(build().line() + "\n")
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", "", "where the embedded coordinator keeps its Raft log and snapshots (env DROVER_DATA_DIR; default $XDG_STATE_HOME/drover, ~/.local/state/drover)")
	// Defaults the operator keeps in ~/.config/drover/config.yaml.
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := applyConfig(cmd, g); err != nil {
			return err
		}
		if f := cmd.Flags().Lookup("output"); f != nil && !f.Changed && g.output != "auto" {
			if checkOutput(g.output) != nil {
				return withCode(exitUsage, fmt.Errorf("config %s: output %q: want one of %s", configPath(), g.output, strings.Join(outputFormats, ", ")))
			}
		}
		return checkOutput(g.output)
	}
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "auto", "output format: auto (live progress on a terminal, lines otherwise), text, json")
	root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
	g.cluster.register(root)
	root.AddCommand(
		newDeployCmd(g),
		newPlanCmd(g),
		newStatusCmd(g),
		newHistoryCmd(g),
		newLogsCmd(g),
		newRollbackCmd(g),
		newRepairCmd(g),
		newPauseCmd(g),
		newResumeCmd(g),
		newAbortCmd(g),
		newServerCmd(),
		newClusterCmd(g),
		newTokenCmd(g),
		newTLSCmd(),
		newAgentCmd(g),
		newHostsCmd(g),
		newVersionCmd(g),
		newUICmd(g),
	)
	return root
}
