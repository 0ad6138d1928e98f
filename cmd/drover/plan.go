package main

import (
	"fmt"
	"io"
	"os"

	"github.com/drover-dev/drover/plans"
	"github.com/spf13/cobra"
)

// planHelp is what the commands that read a plan say about variables.
const planHelp = `
version and release.artifact may use ${NAME} (from the environment) and
${NAME:-default}; --set KEY=VALUE replaces either one, whatever the file says
(a relative --set release.artifact is relative to the working directory). An
unset variable without a default is an error at its FILE:LINE:COL. See
docs/plan.md.`

// addSetFlag registers --set on a command that reads a plan.
func addSetFlag(cmd *cobra.Command, set *[]string) {
	cmd.Flags().StringArrayVar(set, "set", nil, "replace the plan's version or release.artifact with `KEY=VALUE` (repeatable)")
}

// planOptions is how the CLI reads a plan: ${NAME} from this process's
// environment, and the --set values.
func planOptions(set []string) (plans.Options, error) {
	opts := plans.Options{Env: os.LookupEnv}
	for _, a := range set {
		k, v, err := plans.ParseSet(a)
		if err != nil {
			return opts, withCode(exitUsage, err)
		}
		if _, dup := opts.Set[k]; dup {
			return opts, withCode(exitUsage, fmt.Errorf("--set %s: %s is set twice", a, k))
		}
		if opts.Set == nil {
			opts.Set = map[string]string{}
		}
		opts.Set[k] = v
	}
	return opts, nil
}

// loadPlan reads the plan file the way every command does (planOptions).
func loadPlan(file string, set []string) (*plans.Plan, error) {
	opts, err := planOptions(set)
	if err != nil {
		return nil, err
	}
	p, err := plans.LoadWith(file, opts, plans.Files{})
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return p, nil
}

// printVars lists the values the plan took from outside its file.
func printVars(w io.Writer, p *plans.Plan) {
	if len(p.Vars) == 0 {
		return
	}
	fmt.Fprintln(w, "values from outside the plan file:")
	for _, v := range p.Vars {
		switch {
		case v.From == plans.FromSet && v.Line > 0:
			fmt.Fprintf(w, "  %-17s %s  (--set; replaces the value at %s:%d:%d)\n", v.Key, v.Value, v.File, v.Line, v.Col)
		case v.From == plans.FromSet:
			fmt.Fprintf(w, "  %-17s %s  (--set)\n", v.Key, v.Value)
		default:
			fmt.Fprintf(w, "  %-17s ${%s} = %s  (%s; %s:%d:%d)\n", v.Key, v.Name, v.Value, v.From, v.File, v.Line, v.Col)
		}
	}
	fmt.Fprintln(w)
}

func newPlanCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Check a plan, or show what a deploy would do",
	}
	var validateSet, showSet []string
	validate := &cobra.Command{
		Use:   "validate PLAN",
		Short: "Check a plan and report every problem as FILE:LINE:COL: message",
		Long: `Check a plan without touching any host. Every problem in the file is reported
at once, one per line, as FILE:LINE:COL: message. Exit code 2 when invalid.
With -o json, a valid plan is printed as 'plan show -o json' prints it.
` + planHelp,
		Example: `  drover plan validate web.yaml
  VERSION=2.0.1 drover plan validate web.yaml
  drover plan validate web.yaml --set version=2.0.1 --set release.artifact=dist/app-2.0.1.tar.gz`,
		Args: exactArgs(1, "PLAN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := loadPlan(args[0], validateSet)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(cmd.OutOrStdout(), planToJSON(p))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok: %s %s to %d hosts in %d batches\n",
				args[0], p.Name, p.Version, len(p.Hosts), len(p.Batches()))
			return nil
		},
	}
	addSetFlag(validate, &validateSet)
	show := &cobra.Command{
		Use:   "show PLAN",
		Short: "Print the batches and every action a deploy would take, in order",
		Long: `Print the batches, the hosts in each, and every command and load balancer
action a deploy would run, in order, without touching anything. Values taken
from the environment or --set are listed first, with where they came from.
With -o json, the plan as a deploy would run it: defaults applied, variables
resolved (vars says from where), the hosts of each batch, the strategy, health
checks, load balancer and analysis gates, durations in seconds (docs/json.md).
` + planHelp,
		Args: exactArgs(1, "PLAN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := loadPlan(args[0], showSet)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(cmd.OutOrStdout(), planToJSON(p))
			}
			printVars(cmd.OutOrStdout(), p)
			return p.Describe(cmd.OutOrStdout())
		},
	}
	addSetFlag(show, &showSet)
	cmd.AddCommand(validate, show)
	return cmd
}
