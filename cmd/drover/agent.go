package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/drover-dev/drover/agent"
	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/raftstore"
	"github.com/drover-dev/drover/transport/agent/installer"
	"github.com/drover-dev/drover/transport/ssh"
	"github.com/spf13/cobra"
)

func newAgentCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Host agents: drover's second way to reach a host, for fleets without SSH from the coordinators",
		Long: `A drover agent is a small daemon on a host that dials out to the coordinator
cluster (so it works behind NAT), authenticates with mutual TLS, and carries out
the same pipeline as SSH: commands, file uploads, local health checks. Mark such
hosts 'transport: agent' in a plan; a plan may mix SSH and agent hosts.

Set up: 'drover agent install --plan PLAN HOST...' (over SSH, once), or install
the .deb and write /etc/drover/agent.yaml with a join token from
'drover agent token create'. 'drover hosts' lists the agents.`,
	}
	cmd.AddCommand(newAgentRunCmd(), newAgentTokenCmd(g), newAgentRevokeCmd(&g.cluster),
		newAgentInstallCmd(g, false), newAgentInstallCmd(g, true))
	return cmd
}

func newAgentRunCmd() *cobra.Command {
	var config, logLevel string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the agent on this host (systemd or drover's supervisor starts it)",
		Long: `Run the agent: enroll with the join token once (the token file is then
deleted and never needed again), then stay connected to the cluster's leader,
reconnecting with backoff, and carry out its actions. The config file:

  name: web1                                  # the host's name in plans
  coordinators: ["10.0.0.5:7443", "10.0.0.6:7443"]
  ca: /opt/drover-agent/ca.crt                # the cluster CA
  state_dir: /opt/drover-agent/state          # key, certificate, last term seen
  token_file: /opt/drover-agent/join.token    # single-use, from 'drover agent token create'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if config == "" {
				return withCode(exitUsage, errors.New("--config is required (see 'drover agent run --help')"))
			}
			cfg, err := agent.LoadConfig(config)
			if err != nil {
				return withCode(exitUsage, err)
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return withCode(exitUsage, fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel))
			}
			cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			cfg.Version = build().Version
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := agent.Run(ctx, cfg); err != nil && ctx.Err() == nil {
				return withCode(exitFailed, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "the agent's config file (YAML)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func newAgentTokenCmd(g *globalFlags) *cobra.Command {
	cf := &g.cluster
	cmd := &cobra.Command{Use: "token", Short: "Join tokens for enrolling agents"}
	var (
		ttl     time.Duration
		replace bool
	)
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a short-lived, single-use join token for agent NAME and print it once",
		Long: `Create a join token for the agent named NAME: that agent presents it once to
get its certificate from the cluster CA. It works once, only for NAME, and only
until --ttl has passed. A name that is enrolled already (or revoked) is refused
unless the token is made with --replace: the new key then takes the name over,
and the old certificate stops working.`,
		Example: `  drover agent token create web3 > /etc/drover/join.token
  drover agent token create web1 --replace     # web1's disk was replaced, or it was revoked`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			agent := args[0]
			if ttl <= 0 {
				return withCode(exitUsage, errors.New("--ttl must be positive: join tokens are short-lived"))
			}
			return requireCluster(cmd.Context(), cf, func(ctx context.Context, cl *api.Client) error {
				tok, err := cl.CreateToken(ctx, joinTokenRequest(agent, ttl, replace))
				if err != nil {
					return err
				}
				return printToken(os.Stdout, g.output, tok)
			})
		},
	}
	create.Flags().BoolVar(&replace, "replace", false, "allow enrolling NAME although it is enrolled already or revoked")
	create.Flags().DurationVar(&ttl, "ttl", 15*time.Minute, "how long the token can be used")
	cmd.AddCommand(create)
	return cmd
}

func newAgentRevokeCmd(cf *clusterFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Refuse an agent's certificate from now on (it must enroll again with a new token)",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return requireCluster(cmd.Context(), cf, func(ctx context.Context, cl *api.Client) error {
				if err := cl.RevokeAgent(ctx, args[0]); err != nil {
					return err
				}
				fmt.Printf("revoked %s\n", args[0])
				return nil
			})
		},
	}
}

func newHostsCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "hosts",
		Short: "List the host agents: name, address, version, last heartbeat, state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return requireCluster(cmd.Context(), &g.cluster, func(ctx context.Context, cl *api.Client) error {
				hs, err := cl.Hosts(ctx)
				if err != nil {
					return err
				}
				if g.output == "json" {
					return writeJSON(os.Stdout, orEmpty(hs))
				}
				return printHosts(os.Stdout, hs, time.Now())
			})
		},
	}
}

func newAgentInstallCmd(g *globalFlags, uninstall bool) *cobra.Command {
	var (
		planFile, dir, user, identity, knownHosts, binDir string
		acceptNew, replace                                bool
	)
	use, short := "install HOST...", "Install (or upgrade) the agent on hosts over SSH, enroll it and start it"
	if uninstall {
		use, short = "uninstall HOST...", "Stop the agent on hosts and remove it"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

Hosts and SSH settings come from --plan (its hosts by name, its ssh block;
host keys are verified against known_hosts; --user and --identity-file
override the plan's), or from the flags with HOST given as name=address or an
address. install uploads the drover binary
for each host's architecture (this one, or drover-linux-ARCH beside it, or
from --bin-dir), writes the agent's config and the cluster CA, a join token
for hosts not enrolled yet, and starts it under systemd, or, on hosts without
systemd, under drover's own small supervisor (and says so). Running it again
upgrades what changed and leaves the rest alone. With -o json, the progress
lines go to stderr and stdout gets the result of each host (docs/json.md).`,
		Example: `  drover agent install --plan web.yaml web3 web4
  drover agent install --plan web.yaml --user root web3     # the plan's deploy user cannot write /opt
  drover agent install --user deploy --identity-file ~/.ssh/id_ed25519 web7=10.0.0.17
  drover agent uninstall --plan web.yaml web4`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, sshCfg, err := installTargets(planFile, args, user, identity, knownHosts, acceptNew)
			if err != nil {
				return withCode(exitUsage, err)
			}
			opts := installer.Options{Dir: dir, SSH: sshCfg, Out: os.Stdout, Binary: agentBinary(binDir)}
			if g.output == "json" {
				opts.Out = os.Stderr // stdout is the results' JSON
			}
			run := func(ctx context.Context, cl *api.Client) error {
				var res []installer.Result
				if uninstall {
					res, err = installer.Uninstall(ctx, targets, opts)
				} else {
					res, err = installer.Install(ctx, targets, opts)
				}
				if g.output == "json" {
					// The hosts that succeeded, also when others failed.
					if jerr := writeJSON(os.Stdout, installJSON(res)); jerr != nil && err == nil {
						return jerr
					}
				} else {
					for _, r := range res {
						fmt.Printf("%s: %s\n", r.Host, r.Action)
					}
				}
				if err != nil {
					return withCode(exitFailed, err)
				}
				return nil
			}
			if uninstall {
				return run(cmd.Context(), nil)
			}
			return requireCluster(cmd.Context(), &g.cluster, func(ctx context.Context, cl *api.Client) error {
				addrs, _ := g.cluster.addrs()
				opts.Coordinators = addrs
				ca, err := os.ReadFile(envOr(g.cluster.caFile, "DROVER_CA"))
				if err != nil {
					return withCode(exitUsage, err)
				}
				opts.CA = ca
				opts.Token = func(ctx context.Context, host string) (string, error) {
					if !replace {
						if err := notEnrolled(ctx, cl, host); err != nil {
							return "", err
						}
					}
					tok, err := cl.CreateToken(ctx, joinTokenRequest(host, 15*time.Minute, replace))
					return tok.Token, err
				}
				return run(ctx, cl)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&planFile, "plan", "", "take hosts and SSH settings from this plan")
	f.StringVar(&dir, "dir", "/opt/drover-agent", "where the agent lives on each host")
	f.StringVar(&user, "user", "", "SSH user (default: the plan's, else the current user)")
	f.StringVar(&identity, "identity-file", "", "SSH private key (default: the plan's; ssh-agent is used too)")
	f.StringVar(&knownHosts, "known-hosts", "", "known_hosts file (without --plan; default ~/.ssh/known_hosts)")
	f.BoolVar(&replace, "replace", false, "let hosts enroll under names that are enrolled already or revoked (a reinstalled host)")
	f.BoolVar(&acceptNew, "accept-new-host-keys", false, "without --plan: trust and record keys of hosts not in known_hosts yet (changed keys are still refused)")
	f.StringVar(&binDir, "bin-dir", "", "folder holding drover-linux-ARCH binaries for hosts of other architectures")
	return cmd
}

// installTargets resolves HOST arguments against a plan, or builds hosts
// from the arguments and flags.
func installTargets(planFile string, args []string, user, identity, knownHosts string, acceptNew bool) ([]installer.Target, ssh.Config, error) {
	if planFile != "" {
		data, err := os.ReadFile(planFile)
		if err != nil {
			return nil, ssh.Config{}, err
		}
		p, err := plans.ParseWith(planFile, data, plans.Options{Env: os.LookupEnv}, plans.Files{})
		if err != nil {
			return nil, ssh.Config{}, err
		}
		var ts []installer.Target
		for _, a := range args {
			h, ok := p.HostByName(a)
			if !ok {
				return nil, ssh.Config{}, fmt.Errorf("%s: no host %q in the plan", planFile, a)
			}
			ts = append(ts, installer.Target{Name: h.Name, Host: h})
		}
		cfg := ssh.ConfigFromPlan(p.SSH)
		if user != "" {
			// Deploys may run as an unprivileged user; installing an
			// agent (a service) often needs another, like root.
			cfg.User = user
		}
		if identity != "" {
			cfg.IdentityFile = identity
		}
		return ts, cfg, nil
	}
	home, _ := os.UserHomeDir()
	if knownHosts == "" {
		knownHosts = filepath.Join(home, ".ssh", "known_hosts")
	}
	if user == "" {
		user = os.Getenv("USER")
	}
	ps := plans.SSH{User: user, IdentityFile: identity, KnownHosts: knownHosts, HostKeyChecking: plans.HostKeyStrict,
		ConnectTimeout: 10 * time.Second, CommandTimeout: 5 * time.Minute}
	if acceptNew {
		ps.HostKeyChecking = plans.HostKeyAcceptNew
	}
	var ts []installer.Target
	for _, a := range args {
		name, addr, ok := strings.Cut(a, "=")
		if !ok {
			addr = a
		}
		ts = append(ts, installer.Target{Name: name, Host: plans.Host{Name: name, Address: addr, Transport: plans.TransportSSH}})
	}
	return ts, ssh.ConfigFromPlan(ps), nil
}

// agentBinary finds the drover binary for a host's architecture.
func agentBinary(binDir string) func(goarch string) (string, error) {
	return func(goarch string) (string, error) {
		self, err := os.Executable()
		if err != nil {
			return "", err
		}
		if goarch == runtime.GOARCH && runtime.GOOS == "linux" {
			return self, nil
		}
		name := "drover-linux-" + goarch
		for _, d := range []string{binDir, filepath.Dir(self)} {
			if d == "" {
				continue
			}
			if p := filepath.Join(d, name); fileExists(p) {
				return p, nil
			}
		}
		return "", fmt.Errorf("no drover binary for linux/%s: build one with 'GOOS=linux GOARCH=%s go build -o %s ./cmd/drover' and pass --bin-dir", goarch, goarch, name)
	}
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// joinTokenRequest asks for a join token bound to agent; its label in
// 'drover token list' says for whom and when.
func joinTokenRequest(agent string, ttl time.Duration, replace bool) api.TokenRequest {
	return api.TokenRequest{
		Name: fmt.Sprintf("agent-join-%s-%s", agent, time.Now().UTC().Format("20060102-150405.000")),
		Role: raftstore.RoleAgentJoin, TTL: api.Duration(ttl), Agent: agent, Replace: replace,
	}
}

// notEnrolled refuses, before anything is written on the host, to install
// an agent under a name the cluster knows already (a reinstalled host, a
// revoked agent): its join token would be refused at enrollment.
func notEnrolled(ctx context.Context, cl *api.Client, name string) error {
	hs, err := cl.Hosts(ctx)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if h.Name == name {
			return fmt.Errorf("agent %s is enrolled in the cluster already (%s) but has no certificate on the host: "+
				"run again with --replace to give the name to this new install", name, h.State)
		}
	}
	return nil
}
