package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/internal/shell"
	"github.com/spf13/cobra"
)

const tlsLong = `drover coordinators talk to each other (Raft) and serve their HTTPS API over
TLS, with certificates from a CA of the cluster's own. drover makes the CA and
every certificate itself: no openssl, no external CA.

A three-coordinator cluster in five minutes:

  # 1. The cluster CA and the bootstrap management token, in ./tls (once)
  drover tls init --dir tls

  # 2. One server certificate per coordinator, with every address its peers
  #    and clients dial it on. Nothing is added for you, not even 127.0.0.1.
  drover tls issue server c1 --ip 10.0.0.1
  drover tls issue server c2 --ip 10.0.0.2
  drover tls issue server c3 --ip 10.0.0.3 --dns c3.example.internal

  # 3. A client certificate for your CLI (and one per person or CI job)
  drover tls issue client ops

  # 4. On each coordinator: a tls dir with ca.crt, cN.crt and cN.key, then
  drover server --tls-dir tls ...

  # 5. Point the CLI at the cluster
  export DROVER_CA=tls/ca.crt DROVER_CLIENT_CERT=tls/ops.crt \
         DROVER_CLIENT_KEY=tls/ops.key DROVER_TOKEN=$(cat tls/bootstrap.token)

What to guard: ca.key signs certificates, so whoever holds it can join the
cluster. Keep it where you issue certificates, backed up, and do not copy it
to the coordinators. bootstrap.token is a management credential: treat it
like a root password. Keys and the token are written 0600 and never printed.

Every certificate carries its role: coordinators accept only server
certificates of this CA as Raft peers; client certificates are for the API.
Servers are valid 2 years and clients 1 year by default (the CA 10 years);
renew one with 'drover tls issue ... --force'.`

func newTLSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Set up TLS for a cluster: a CA, server and client certificates, a token",
		Long:  tlsLong,
		Args:  subcommandArgs("init, issue"),
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTLSInitCmd(), newTLSIssueCmd())
	return cmd
}

// subcommandArgs makes a command group reject an unknown subcommand with a
// usage error: cobra would otherwise print the help and exit 0, and a typo
// in a setup script would go unnoticed.
func subcommandArgs(known string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return withCode(exitUsage, fmt.Errorf("%s: unknown command %q (want %s); see '%s --help'", cmd.CommandPath(), args[0], known, cmd.CommandPath()))
		}
		return nil
	}
}

func newTLSInitCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the cluster CA and the bootstrap management token",
		Long: `Create a new cluster CA (ca.crt, ca.key) and a bootstrap management token
(bootstrap.token) in --dir, which is created 0700 when missing. Refuses to touch
a dir that already holds any of them: a new CA would orphan every certificate
of the old one. The key and the token are never printed.

` + "See 'drover tls --help' for the whole setup.",
		Example: "  drover tls init --dir tls",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := pki.Init(dir); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "created the cluster CA in %s:\n", dir)
			fmt.Fprintf(w, "  %-28s the CA certificate: every coordinator and client needs it\n", filepath.Join(dir, pki.CAFile))
			fmt.Fprintf(w, "  %-28s the CA key (0600): signs certificates; keep it here, backed up\n", filepath.Join(dir, pki.CAKeyFile))
			fmt.Fprintf(w, "  %-28s the bootstrap management token (0600): guard it like a root password\n", filepath.Join(dir, pki.BootstrapTokenFile))
			fmt.Fprintln(w, "\nnext:")
			fmt.Fprintf(w, "  drover tls issue server c1 --ip ADDRESS%s   # one per coordinator, with the addresses peers dial\n", dirFlag(dir))
			fmt.Fprintf(w, "  drover tls issue client ops%s              # for your CLI\n", dirFlag(dir))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "tls", "directory for the CA, the token and issued certificates")
	return cmd
}

// dirFlag repeats --dir in printed commands only when it is not the default,
// so that they can be pasted as they are.
func dirFlag(dir string) string {
	if dir == "tls" {
		return ""
	}
	return " --dir " + shell.Quote(dir)
}

type issueFlags struct {
	dir, out string
	force    bool
	validity time.Duration
	ips, dns []string
}

func newTLSIssueCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a server or client certificate from the cluster CA",
		Long: `Issue a certificate signed by the cluster CA in --dir:

  server NAME   a coordinator (Raft peer and API server); needs --ip and/or --dns
  client NAME   an operator's CLI or a CI job, for the API

NAME.crt and NAME.key (0600) are written to --out (default: --dir). Existing
files are never replaced without --force.`,
		Args: subcommandArgs("server, client"),
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	// Shared flags are persistent so that they parse (and a wrong kind gets
	// a clear error) wherever they are written on the line.
	f := &issueFlags{}
	cmd.PersistentFlags().StringVar(&f.dir, "dir", "tls", "directory of the cluster CA (from 'drover tls init')")
	cmd.PersistentFlags().StringVar(&f.out, "out", "", "where to write NAME.crt and NAME.key (default: --dir)")
	cmd.PersistentFlags().BoolVar(&f.force, "force", false, "replace existing NAME.crt and NAME.key (to renew)")
	cmd.PersistentFlags().Var(&validityValue{&f.validity}, "validity", "how long the certificate is valid: 1y, 90d, 720h (default 2y for servers, 1y for clients)")
	cmd.AddCommand(newTLSIssueKindCmd(pki.RoleServer, f), newTLSIssueKindCmd(pki.RoleClient, f))
	return cmd
}

func newTLSIssueKindCmd(role pki.Role, f *issueFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:  string(role) + " NAME",
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runIssue(cmd.OutOrStdout(), role, args[0], f)
		},
	}
	if role == pki.RoleServer {
		cmd.Short = "Issue a coordinator's certificate, valid for the addresses it is dialed on"
		cmd.Long = `Issue a certificate for the coordinator NAME (its node id). Give every
address its peers and clients dial it on, with --ip and --dns (repeatable, or
comma-separated): TLS clients check the address they dialed against the
certificate, and nothing is added for you, not even 127.0.0.1.

The certificate serves the HTTPS API and authenticates the coordinator to its
Raft peers. Copy ca.crt, NAME.crt and NAME.key to the coordinator; never the
CA key.`
		cmd.Example = `  drover tls issue server c1 --ip 10.0.0.1
  drover tls issue server c2 --ip 10.0.0.2 --ip 192.168.5.2 --dns c2.example.internal
  drover tls issue server c1 --ip 10.0.0.1 --force --validity 1y   # renew`
		cmd.Flags().StringSliceVar(&f.ips, "ip", nil, "an IP address the coordinator is dialed on (repeatable)")
		cmd.Flags().StringSliceVar(&f.dns, "dns", nil, "a DNS name the coordinator is dialed by (repeatable)")
	} else {
		cmd.Short = "Issue a certificate for an operator's CLI or a CI job"
		cmd.Long = `Issue a client certificate for NAME (a person or a CI job, as it will appear
in the audit log). It authenticates to the HTTPS API only: a client certificate
can never act as a coordinator.

Use it with:
  export DROVER_CA=tls/ca.crt DROVER_CLIENT_CERT=tls/NAME.crt DROVER_CLIENT_KEY=tls/NAME.key`
		cmd.Example = `  drover tls issue client ops
  drover tls issue client ci-deploy --out ./ci-secrets --validity 90d`
	}
	return cmd
}

func runIssue(w io.Writer, role pki.Role, name string, f *issueFlags) error {
	req := pki.IssueRequest{Name: name, Role: role, DNS: f.dns, Validity: f.validity}
	for _, s := range f.ips {
		ip := net.ParseIP(strings.TrimSpace(s))
		switch {
		case ip == nil:
			return withCode(exitUsage, fmt.Errorf("--ip %q is not an IP address (names go in --dns)", s))
		case ip.IsUnspecified():
			return withCode(exitUsage, fmt.Errorf("--ip %s is the listen-on-everything address, which no one dials; give the address peers use", s))
		}
		req.IPs = append(req.IPs, ip)
	}
	for _, d := range f.dns {
		if net.ParseIP(d) != nil {
			return withCode(exitUsage, fmt.Errorf("--dns %q is an IP address; use --ip", d))
		}
	}
	if role == pki.RoleServer && len(req.IPs) == 0 && len(req.DNS) == 0 {
		return withCode(exitUsage, errors.New("a server certificate needs --ip and/or --dns: every address its peers and clients dial it on (127.0.0.1 is not added for you)"))
	}
	ca, err := pki.LoadCA(f.dir)
	if err != nil {
		return err
	}
	out := f.out
	if out == "" {
		out = f.dir
	}
	certPath, keyPath, err := ca.Issue(out, req, f.force)
	if err != nil {
		return err
	}
	cert, err := pki.ReadCert(certPath)
	if err != nil {
		return err
	}

	var sans []string
	for _, ip := range cert.IPAddresses {
		sans = append(sans, ip.String())
	}
	sans = append(sans, cert.DNSNames...)
	fmt.Fprintf(w, "wrote %s: %s certificate for %q, valid until %s\n", certPath, role, name, clock(cert.NotAfter))
	if len(sans) > 0 {
		fmt.Fprintf(w, "  valid for: %s\n", strings.Join(sans, ", "))
	}
	fmt.Fprintf(w, "wrote %s: its private key (0600)\n", keyPath)
	caPath := filepath.Join(f.dir, pki.CAFile)
	if role == pki.RoleServer {
		fmt.Fprintf(w, "\nnext: copy these to coordinator %s's tls dir (never %s):\n", name, pki.CAKeyFile)
		fmt.Fprintf(w, "  %s\n  %s\n  %s\n", caPath, certPath, keyPath)
		fmt.Fprintln(w, "and start it with: drover server --tls-dir DIR ...")
		return nil
	}
	fmt.Fprintln(w, "\nuse it with:")
	fmt.Fprintf(w, "  export DROVER_CA=%s DROVER_CLIENT_CERT=%s DROVER_CLIENT_KEY=%s\n", shell.Quote(caPath), shell.Quote(certPath), shell.Quote(keyPath))
	fmt.Fprintf(w, "  export DROVER_TOKEN=$(cat %s)   # the bootstrap token, until you have your own\n", shell.Quote(filepath.Join(f.dir, pki.BootstrapTokenFile)))
	return nil
}

// validityValue is a duration flag that also takes days and years: people
// think of certificate lifetimes as "90d" or "2y", not "17520h".
type validityValue struct{ d *time.Duration }

func (v *validityValue) Type() string { return "duration" }

func (v *validityValue) String() string {
	if v.d == nil || *v.d == 0 {
		return ""
	}
	const day = 24 * time.Hour
	switch d := *v.d; {
	case d%(365*day) == 0:
		return strconv.FormatInt(int64(d/(365*day)), 10) + "y"
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	default:
		return d.String()
	}
}

func (v *validityValue) Set(s string) error {
	const day = 24 * time.Hour
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "y"); ok {
		years, err := strconv.Atoi(n)
		if err != nil {
			return fmt.Errorf("%q: want a whole number of years (2y), days (90d) or a duration (720h)", s)
		}
		if years > 20 {
			return fmt.Errorf("%q: more than 20 years", s)
		}
		d = time.Duration(years) * 365 * day
	} else if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return fmt.Errorf("%q: want a whole number of years (2y), days (90d) or a duration (720h)", s)
		}
		if days > 20*365 {
			return fmt.Errorf("%q: more than 20 years", s)
		}
		d = time.Duration(days) * day
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return fmt.Errorf("%q: want years (2y), days (90d) or a duration (720h)", s)
		}
	}
	if d <= 0 {
		return fmt.Errorf("%q: must be positive", s)
	}
	if d > 20*365*day {
		return fmt.Errorf("%q: more than 20 years", s)
	}
	*v.d = d
	return nil
}
