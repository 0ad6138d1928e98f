package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/coordinator"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/oneline"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/raftstore"
	"github.com/spf13/cobra"
)

func newServerCmd() *cobra.Command {
	var (
		cfg       coordinator.Config
		join      string
		tlsDir    string
		p         pki.Paths
		tokenFile string
		logLevel  string
		timing    raftstore.Timing
	)
	cmd := &cobra.Command{
		Use:   "server --node-id N --data-dir D --raft-addr A --http-addr H [--bootstrap | --join ADDR]",
		Short: "Run a coordinator: one node of a 3- or 5-node drover cluster",
		Long: `Run a coordinator. Three or five of them form a cluster that replicates every
deployment with Raft: any node takes requests, the leader runs the deployments,
and if the leader dies another one resumes them where they stood.

Start the first node with --bootstrap, the others with --join pointing at any
running node's API address. A node restarted with its data dir rejoins by
itself (--join is harmless then). Raft and the API use mutual TLS with
certificates from 'drover tls': with --tls-dir DIR the node reads DIR/ca.crt,
DIR/<node-id>.crt and DIR/<node-id>.key, and stores the hash of
DIR/bootstrap.token as the first management token. When DIR also holds the CA
key (ca.key), the node signs the certificates of enrolling host agents.

Raft timeouts are tuned for a LAN (heartbeat 300ms, election 300ms, leader
lease 200ms): a dead leader is replaced in about a second.

Plans are written by API clients, so a submitted plan may only name files on
this node that --plan-files allows (repeat it: a file, or a directory and all
below it): its inventory, ssh.identity_file, ssh.known_hosts (which accept-new
appends to) and load_balancer.haproxy.socket. Any other path is refused with
one message, whether it exists or not. A plan that leaves ssh.known_hosts out
uses this node's ~/.ssh/known_hosts.`,
		Example: `  drover tls init && drover tls issue server c1 --ip 10.0.0.5
  drover server --node-id c1 --data-dir /var/lib/drover --tls-dir tls \
      --raft-addr 10.0.0.5:7000 --http-addr 10.0.0.5:7443 --bootstrap \
      --plan-files /etc/drover/ssh --plan-files /run/haproxy/admin.sock
  drover server --node-id c2 --data-dir /var/lib/drover --tls-dir tls \
      --raft-addr 10.0.0.6:7000 --http-addr 10.0.0.6:7443 --join 10.0.0.5:7443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.NodeID == "" || cfg.DataDir == "" || cfg.RaftAddr == "" || cfg.HTTPAddr == "" {
				return withCode(exitUsage, errors.New("--node-id, --data-dir, --raft-addr and --http-addr are required (see 'drover server --help')"))
			}
			if !safeNodeID(cfg.NodeID) {
				return withCode(exitUsage, fmt.Errorf("--node-id %q: use letters, digits, '-' and '_'", cfg.NodeID))
			}
			if cfg.Bootstrap && join != "" {
				return withCode(exitUsage, errors.New("--bootstrap starts a new cluster, --join joins one: pick one"))
			}
			if join != "" {
				a, err := api.ParseAddrs(join)
				if err != nil {
					return withCode(exitUsage, fmt.Errorf("--join: %w", err))
				}
				cfg.Join = a
			}
			if tlsDir != "" {
				cfg.CADir = tlsDir
				d := pki.DirPaths(tlsDir, cfg.NodeID)
				p.CA, p.Cert, p.Key = orDefault(p.CA, d.CA), orDefault(p.Cert, d.Cert), orDefault(p.Key, d.Key)
				if tokenFile == "" {
					if _, err := os.Stat(filepath.Join(tlsDir, pki.BootstrapTokenFile)); err == nil {
						tokenFile = filepath.Join(tlsDir, pki.BootstrapTokenFile)
					}
				}
			}
			if p.CA == "" || p.Cert == "" || p.Key == "" {
				return withCode(exitUsage, errors.New("TLS is required: --tls-dir DIR, or --ca, --cert and --key (see 'drover tls --help')"))
			}
			cfg.TLS = p
			if cfg.KeepDeployments < 1 {
				return withCode(exitUsage, fmt.Errorf("--keep-deployments %d: want 1 or more", cfg.KeepDeployments))
			}
			for i, f := range cfg.PlanFiles {
				abs, err := filepath.Abs(f)
				if err != nil {
					return withCode(exitUsage, fmt.Errorf("--plan-files %s: %w", f, err))
				}
				cfg.PlanFiles[i] = abs
			}
			if tokenFile != "" {
				tok, err := pki.ReadToken(tokenFile)
				if err != nil {
					return withCode(exitUsage, err)
				}
				cfg.BootstrapToken = tok
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return withCode(exitUsage, fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel))
			}
			cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			cfg.Timing = timing
			cfg.Version = build().Version

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c, err := coordinator.Start(ctx, cfg)
			if err != nil {
				if errors.Is(err, raftstore.ErrDataDirInUse) {
					return withCode(exitUsage, err)
				}
				return withCode(exitFailed, err)
			}
			err = c.Run(ctx)
			cfg.Log.Info("shutting down")
			return errors.Join(err, c.Close())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.NodeID, "node-id", "", "this node's unique, stable name (c1, c2, ...)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "where the node keeps its Raft log, snapshots and artifacts")
	f.StringVar(&cfg.RaftAddr, "raft-addr", "", "ip:port for Raft traffic; peers dial it, so not 0.0.0.0")
	f.StringVar(&cfg.HTTPAddr, "http-addr", "", "ip:port for the HTTPS API; clients and peers dial it")
	f.BoolVar(&cfg.Bootstrap, "bootstrap", false, "start a new cluster with this node (ignored when the data dir already has state)")
	f.StringVar(&join, "join", "", "API addresses of running members to join through, comma-separated")
	f.StringVar(&tlsDir, "tls-dir", "", "directory made by 'drover tls' (ca.crt, <node-id>.crt/.key, bootstrap.token)")
	f.StringVar(&p.CA, "ca", "", "cluster CA certificate (overrides --tls-dir)")
	f.StringVar(&p.Cert, "cert", "", "this node's server certificate (overrides --tls-dir)")
	f.StringVar(&p.Key, "key", "", "this node's key (overrides --tls-dir)")
	f.StringVar(&tokenFile, "bootstrap-token-file", "", "management token to store if the cluster has none (default: --tls-dir's bootstrap.token)")
	f.StringArrayVar(&cfg.PlanFiles, "plan-files", nil, "a file, or a directory of files, that submitted plans may name (inventory, ssh.identity_file, ssh.known_hosts, haproxy socket); repeat it; default none")
	f.IntVar(&cfg.KeepDeployments, "keep-deployments", deploy.DefaultKeepFinished, "finished deployments kept in the replicated state (running and paused ones always are)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.BoolVar(&cfg.NoDashboard, "no-dashboard", false, "do not serve the web dashboard at /ui/ (it signs in with a read token alone, no certificate: docs/dashboard.md)")
	f.DurationVar(&timing.Heartbeat, "raft-heartbeat-timeout", 0, "follower's wait for the leader before an election (default 300ms)")
	f.DurationVar(&timing.Election, "raft-election-timeout", 0, "candidate's wait for votes (default 300ms)")
	f.DurationVar(&timing.LeaderLease, "raft-leader-lease", 0, "leader steps down after this long without a quorum (default 200ms)")
	f.MarkHidden("raft-leader-lease")
	f.IntVar(&cfg.Limits.ConnsPerSource, "max-conns-per-source", coordinator.DefaultLimits.ConnsPerSource,
		"API connections one IP address may hold open at once (-1: no cap; agents behind one NAT share an address)")
	f.DurationVar(&cfg.Limits.ReadTimeout, "http-read-timeout", coordinator.DefaultLimits.ReadTimeout,
		"time a client has to send a whole request (event streams and artifact transfers are exempt once authorised)")
	f.DurationVar(&cfg.Limits.IdleTimeout, "http-idle-timeout", coordinator.DefaultLimits.IdleTimeout,
		"how long an idle keep-alive connection stays open")
	return cmd
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

func safeNodeID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func newClusterCmd(g *globalFlags) *cobra.Command {
	cf, output := &g.cluster, &g.output
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect and change the coordinator cluster (needs --server or DROVER_ADDR)",
	}
	members := &cobra.Command{
		Use:   "members",
		Short: "List the coordinators: id, addresses, role, leader, last contact, applied index",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return requireCluster(cmd.Context(), cf, func(ctx context.Context, cl *api.Client) error {
				ms, err := cl.Members(ctx)
				if err != nil {
					return err
				}
				if *output == "json" {
					return writeJSON(os.Stdout, membersJSON(ms))
				}
				tw := newTable(os.Stdout)
				fmt.Fprintln(tw, "ID\tRAFT\tAPI\tROLE\tLEADER\tLAST CONTACT\tAPPLIED")
				for _, m := range ms {
					role, contact := strings.ToLower(m.State), "-"
					if !m.Reachable {
						role = "unreachable"
						if m.Error != "" {
							role += " (" + oneline.First(m.Error, 100) + ")"
						}
					}
					if c, ok := lastContact(m); ok {
						contact = humanDuration(c) + " ago"
					}
					if !m.Voter {
						role += ", non-voter"
					}
					leader := ""
					if m.Leader {
						leader = "*"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", m.ID, m.RaftAddr, orNone(m.HTTPAddr), role, leader, contact, m.AppliedIndex)
				}
				return tw.Flush()
			})
		},
	}
	remove := &cobra.Command{
		Use:   "remove NODE",
		Short: "Remove a coordinator from the cluster (stop it first)",
		Long: `Remove a coordinator from the Raft configuration, for a machine that is gone
for good. A node that is only down for a while needs nothing: it rejoins when
it comes back. Keep an odd number of voters (3 or 5).`,
		Args: exactArgs(1, "NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return requireCluster(cmd.Context(), cf, func(ctx context.Context, cl *api.Client) error {
				if err := cl.RemoveMember(ctx, args[0]); err != nil {
					return err
				}
				fmt.Printf("removed %s\n", args[0])
				return nil
			})
		},
	}
	backup := &cobra.Command{
		Use:   "backup FILE",
		Short: "Save the cluster's whole state (deployments, host releases, tokens' hashes) to FILE",
		Long: `Save a consistent copy of the replicated state: the same bytes as a Raft
snapshot. It holds every deployment, each host's current and previous release,
the coordinators' addresses and the API tokens' hashes (never a token). Take
one before upgrades and on a schedule; 'drover cluster restore' reads it back.`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return requireCluster(cmd.Context(), cf, func(ctx context.Context, cl *api.Client) error {
				tmp := args[0] + ".tmp"
				f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
				if err != nil {
					return withCode(exitUsage, err)
				}
				defer os.Remove(tmp)
				err = cl.Backup(ctx, f)
				if err == nil {
					err = f.Sync()
				}
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err == nil {
					err = os.Rename(tmp, args[0])
				}
				if err != nil {
					return err
				}
				fmt.Printf("saved the cluster state to %s\n", args[0])
				return nil
			})
		},
	}
	restore := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the cluster's state with a backup (no deployment may be running)",
		Long: `Replace the whole replicated state with a backup made by 'drover cluster backup',
through Raft, on every coordinator. To rebuild a cluster that lost all its
machines: start a new first node with --bootstrap, join the others, then
restore. Refused while a deployment runs.`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); err != nil {
				return withCode(exitUsage, err)
			}
			return requireCluster(cmd.Context(), cf, func(ctx context.Context, cl *api.Client) error {
				if err := cl.Restore(ctx, func() (io.ReadCloser, error) { return os.Open(args[0]) }); err != nil {
					return err
				}
				fmt.Printf("restored the cluster state from %s\n", args[0])
				return nil
			})
		},
	}
	cmd.AddCommand(members, remove, backup, restore)
	return cmd
}

// requireCluster is withCluster for commands that only make sense on one.
func requireCluster(ctx context.Context, cf *clusterFlags, fn func(context.Context, *api.Client) error) error {
	handled, err := withCluster(ctx, cf, fn)
	if !handled {
		return withCode(exitUsage, errors.New("this command talks to a cluster: set --server or DROVER_ADDR"))
	}
	return err
}

func newTokenCmd(g *globalFlags) *cobra.Command {
	cf := &g.cluster
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage API tokens (needs a management token)",
		Long: `API tokens authenticate clients of a cluster (along with their certificate).
A manage token can do everything; a read token can list and watch. Only a
token's hash is stored in the cluster: the clear text is printed once, here.`,
	}
	var role string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a token and print it once",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return requireCluster(cmd.Context(), cf, func(ctx context.Context, cl *api.Client) error {
				tok, err := cl.CreateToken(ctx, api.TokenRequest{Name: args[0], Role: raftstore.TokenRole(role), TTL: api.Duration(ttl)})
				if err != nil {
					return err
				}
				return printToken(os.Stdout, g.output, tok)
			})
		},
	}
	create.Flags().StringVar(&role, "role", "read", "read (list, status, watch) or manage (everything)")
	create.Flags().DurationVar(&ttl, "ttl", 0, "expire after this long (default: never)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (names and roles, never the tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return requireCluster(cmd.Context(), cf, func(ctx context.Context, cl *api.Client) error {
				ts, err := cl.Tokens(ctx)
				if err != nil {
					return err
				}
				if g.output == "json" {
					return writeJSON(os.Stdout, orEmpty(ts))
				}
				return printTokens(os.Stdout, ts, time.Now())
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return requireCluster(cmd.Context(), cf, func(ctx context.Context, cl *api.Client) error {
				return cl.DeleteToken(ctx, args[0])
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
