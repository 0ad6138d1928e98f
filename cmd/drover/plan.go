package main

import (
	"fmt"
	"os"

	"github.com/drover-dev/drover/plans"
	"github.com/spf13/cobra"
)

func newPlanCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Check a plan, or show what a deploy would do",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate PLAN",
		Short: "Check a plan and report every problem as FILE:LINE:COL: message",
		Long: `Check a plan without touching any host. Every problem in the file is reported
at once, one per line, as FILE:LINE:COL: message. Exit code 2 when invalid.`,
		Args: exactArgs(1, "PLAN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := plans.Load(args[0])
			if err != nil {
				return withCode(exitUsage, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok: %s %s to %d hosts in %d batches\n",
				args[0], p.Name, p.Version, len(p.Hosts), len(p.Batches()))
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "show PLAN",
		Short: "Print the batches and every action a deploy would take, in order",
		Long: `Print the batches, the hosts in each, and every command and load balancer
action a deploy would run, in order, without touching anything.`,
		Args: exactArgs(1, "PLAN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := plans.Load(args[0])
			if err != nil {
				return withCode(exitUsage, err)
			}
			return p.Describe(os.Stdout)
		},
	})
	return cmd
}
