package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/agent"
	"github.com/drover-dev/drover/internal/fence"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/lab"
	hub "github.com/drover-dev/drover/transport/agent"
	"github.com/drover-dev/drover/transport/agent/wire"
)

// cmdAgentProbe is a stand-in leader for tests and benchmarks of real
// agents: the coordinator's own agent hub (package transport/agent) on a lab address,
// with a registry that signs any enrollment with the lab cluster's CA, so
// that a test can send actions with terms of its choosing (a deposed
// leader's, older than one the agent has seen) and time round trips.
//
//	drover-lab agent-probe --listen IP:PORT --tls-dir DIR [--agents N] [--wait D]
//	    [--terms 5,4] [--cmd CMD] [--rounds N] [--ssh-host ADDR --ssh-user U --identity F --known-hosts F]
//
// It waits for --agents agents, then runs --cmd on the first (by name) once
// per term in --terms, then --rounds times (timed), the same over SSH when
// --ssh-host is set, and prints one JSON report.
func cmdAgentProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent-probe", flag.ContinueOnError)
	listen := fs.String("listen", "", "address to serve on")
	tlsDir := fs.String("tls-dir", "", "the lab cluster's TLS dir (ca.crt, ca.key)")
	agents := fs.Int("agents", 1, "how many agents to wait for")
	wait := fs.Duration("wait", 60*time.Second, "how long to wait for them")
	terms := fs.String("terms", "", "comma-separated terms to run --cmd under, in order")
	cmd := fs.String("cmd", "true", "command to run on the agent")
	rounds := fs.Int("rounds", 0, "timed round trips of --cmd (agent, then SSH)")
	sshTarget := addSSHFlags(fs, "ssh-host", "ssh-user") // to time the same command over SSH
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *listen == "" || *tlsDir == "" {
		return fmt.Errorf("%w: --listen and --tls-dir are required", errUsage)
	}
	ca, err := pki.LoadCA(*tlsDir)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(*tlsDir, pki.CAFile))
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return err
	}
	certDir, err := os.MkdirTemp("", "drover-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(certDir)
	if _, _, err := ca.Issue(certDir, pki.IssueRequest{Name: "probe", Role: pki.RoleServer, IPs: []net.IP{net.ParseIP(host)}}, false); err != nil {
		return err
	}
	srvTLS, err := pki.APIServerConfig(pki.Paths{CA: filepath.Join(*tlsDir, pki.CAFile), Cert: filepath.Join(certDir, "probe.crt"), Key: filepath.Join(certDir, "probe.key")})
	if err != nil {
		return err
	}
	h := hub.New(hub.Config{Registry: probeRegistry{ca: ca, caPEM: caPEM}, Leader: probeLeader{}, Log: slog.New(slog.NewTextHandler(stderr, nil))})
	ln, err := tls.Listen("tcp", *listen, srvTLS)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	rep := lab.ProbeReport{}
	usage := memStats()
	rep.HeapBeforeKiB, rep.RSSBeforeKiB = usage.heap, usage.rss
	deadline := time.Now().Add(*wait)
	var names []string
	for {
		names = names[:0]
		for _, st := range h.Agents() {
			if st.Online {
				names = append(names, st.Name)
			}
		}
		if len(names) >= *agents {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d agents connected after %s", len(names), *agents, *wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	slices.Sort(names)
	rep.Agents = len(names)
	usage = memStats()
	rep.HeapAfterKiB, rep.RSSAfterKiB = usage.heap, usage.rss
	target, err := h.Host(names[0])
	if err != nil {
		return err
	}
	rep.Agent = names[0]
	if *terms != "" {
		for _, s := range strings.Split(*terms, ",") {
			term, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return fmt.Errorf("%w: --terms: %v", errUsage, err)
			}
			tctx, err := fence.Check(fence.With(ctx, func(context.Context) (uint64, error) { return term, nil }))
			if err != nil {
				return err
			}
			r := lab.ProbeTerm{Term: term}
			var out strings.Builder
			if err := target.Run(tctx, *cmd, &out); err != nil {
				r.Error, r.Fenced = err.Error(), errors.Is(err, fence.ErrFenced)
			}
			r.Output = out.String()
			rep.Terms = append(rep.Terms, r)
		}
	}
	if *rounds > 0 {
		top := uint64(1 << 62) // above any term the agent has seen
		tctx, _ := fence.Check(fence.With(ctx, func(context.Context) (uint64, error) { return top, nil }))
		rep.AgentRoundTrip, err = timeRounds(*rounds, func() error { return target.Run(tctx, *cmd, io.Discard) })
		if err != nil {
			return fmt.Errorf("agent round trip: %w", err)
		}
		if *sshTarget.host != "" {
			_, cl, err := sshTarget.dial(ctx, false)
			if err != nil {
				return err
			}
			defer cl.Close()
			rep.SSHRoundTrip, err = timeRounds(*rounds, func() error { return cl.Run(ctx, *cmd, io.Discard) })
			if err != nil {
				return fmt.Errorf("ssh round trip: %w", err)
			}
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

type mem struct{ heap, rss uint64 }

// memStats is this process's live heap (after a GC) and resident size.
func memStats() mem {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return mem{heap: (m.HeapInuse + m.StackInuse) / 1024, rss: lab.RSSKiB(os.Getpid())}
}

// probeRegistry signs every enrollment and admits every agent certificate
// of the CA: the probe stands in for a leader, not for its checks.
type probeRegistry struct {
	ca    *pki.CA
	caPEM []byte
}

func (r probeRegistry) Enroll(ctx context.Context, req wire.EnrollRequest) (wire.EnrollResponse, error) {
	pub, err := x509.ParsePKIXPublicKey(req.PublicKey)
	if err != nil {
		return wire.EnrollResponse{}, err
	}
	crt, err := r.ca.Sign(pub, pki.IssueRequest{Name: req.Name, Role: pki.RoleAgent})
	return wire.EnrollResponse{Certificate: crt, CA: r.caPEM}, err
}

func (probeRegistry) Admit(*x509.Certificate) error { return nil }

type probeLeader struct{}

func (probeLeader) IsLeader() bool     { return true }
func (probeLeader) LeaderHTTP() string { return "" }

// cmdAgentLoad runs N real agents (package agent) in this one process
// against a coordinator or a probe, each with its own name, key and state
// dir, enrolled with --token (a probe accepts any). For measuring what a
// connected agent costs the coordinator.
//
//	drover-lab agent-load --coordinator IP:PORT --ca FILE --n N [--prefix load] [--token T]
func cmdAgentLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent-load", flag.ContinueOnError)
	coord := fs.String("coordinator", "", "coordinator (or probe) address")
	caFile := fs.String("ca", "", "cluster CA certificate")
	n := fs.Int("n", 100, "agents")
	prefix := fs.String("prefix", "load", "agent name prefix")
	token := fs.String("token", "probe", "join token")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "drover-agent-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var wg sync.WaitGroup
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range *n {
		name := fmt.Sprintf("%s%04d", *prefix, i)
		state := filepath.Join(dir, name)
		if err := os.MkdirAll(state, 0o700); err != nil {
			return err
		}
		tok := filepath.Join(state, "join.token")
		if err := os.WriteFile(tok, []byte(*token+"\n"), 0o600); err != nil {
			return err
		}
		cfg := agent.Config{Name: name, Coordinators: []string{*coord}, CA: *caFile, StateDir: state, TokenFile: tok, Version: "load", Log: quiet}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := agent.Run(ctx, cfg); err != nil && ctx.Err() == nil {
				fmt.Fprintf(stderr, "%s: %v\n", name, err)
			}
		}()
	}
	fmt.Fprintf(stdout, "%d agents running; Ctrl-C stops them\n", *n)
	wg.Wait()
	return nil
}
