// Command drover-lab runs drover's test lab on this machine (root needed).
//
//	drover-lab up [--hosts N] [--coordinators N] [--haproxies N] [--slow-rc] [--prometheus] [--dir DIR] [--topology FILE] [--detach]
//	drover-lab down ID | --all-stale | --all
//	drover-lab load --url URL [--concurrency N] [--duration D] [--max-duration D]
//	drover-lab artifact --out DIR --version V [--broken | --error-rate SHARE | --slow DURATION]
//	drover-lab demo [--drover PATH] [--hosts N] [--concurrency N] [--batch N] [--cluster=false]
//
// `up` prints the lab's JSON description and keeps the lab until SIGINT or
// SIGTERM; with --detach it prints the lab ID and leaves the lab running
// until `drover-lab down ID`. `load` prints a JSON result when its duration
// ends or on SIGINT/SIGTERM. `demo` is what `make demo` runs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/drover-dev/drover/lab"
)

const usage = `usage:
  drover-lab up [--hosts N] [--coordinators N] [--haproxies N] [--slow-rc] [--prometheus] [--dir DIR] [--topology FILE] [--detach]
  drover-lab down ID | --all-stale | --all
  drover-lab load --url URL [--concurrency N] [--duration D] [--max-duration D] [--timeout D]
  drover-lab artifact --out DIR --version V [--broken | --error-rate SHARE | --slow DURATION]
  drover-lab demo [--drover PATH] [--hosts N] [--concurrency N] [--batch N] [--cluster=false]
`

// errUsage makes main exit 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "drover-lab:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"up":       cmdUp,
		"down":     cmdDown,
		"load":     cmdLoad,
		"artifact": cmdArtifact,
		"demo":     cmdDemo,
		"relay":    cmdRelay, // hidden: the lab starts it in the balancer namespace
		// hidden: a stand-in leader and a crowd of agents, for tests and benchmarks
		"agent-probe": cmdAgentProbe,
		"ssh-probe":   cmdSSHProbe,
		"agent-load":  cmdAgentLoad,
	}
	f, ok := cmds[args[0]]
	if !ok {
		return errUsage
	}
	return f(ctx, args[1:], stdout, stderr)
}

// parse parses flags; flag errors become errUsage.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

func cmdUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	hosts := fs.Int("hosts", lab.DefaultHosts, "web hosts (the first N of the topology, which has 254)")
	coords := fs.Int("coordinators", 0, "coordinator namespaces")
	slowRC := fs.Bool("slow-rc", false, "make each host's login shell bash with a ~/.bashrc that costs "+lab.RCDelay.String()+" per SSH session")
	dir := fs.String("dir", "", "lab directory (default: a new temp dir)")
	topoPath := fs.String("topology", "", "topology file (default: the embedded lab/topology.yaml)")
	detach := fs.Bool("detach", false, "leave the lab running and print its ID")
	haproxies := fs.Int("haproxies", 1, "HAProxy instances in front of the web hosts (2: a pair, each with its own frontend port and runtime API)")
	prometheus := fs.Bool("prometheus", false, "also run Prometheus (Debian's package) in the control namespace, scraping the demo app on every host each second")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	opts := lab.Options{Hosts: *hosts, Coordinators: *coords, Dir: *dir, HAProxies: *haproxies, SlowRC: *slowRC, Log: stderr}
	if *topoPath != "" {
		t, err := lab.LoadTopology(*topoPath)
		if err != nil {
			return err
		}
		opts.Topology = t
	}
	l, err := lab.Up(ctx, opts)
	if err != nil {
		return err
	}
	if *prometheus {
		p, err := l.StartPrometheus(ctx, time.Second)
		if err != nil {
			return errors.Join(err, l.Down())
		}
		fmt.Fprintf(stderr, "prometheus at %s; reach it from inside the lab: ip netns exec %s curl %s/-/ready\n", p.URL, l.CtlNS, p.URL)
	}
	if *detach {
		if err := l.Detach(); err != nil {
			return errors.Join(err, l.Down())
		}
		fmt.Fprintf(stderr, "lab %s is up (description: %s/description.json); remove it with: drover-lab down %s\n", l.ID, l.Dir, l.ID)
		fmt.Fprintln(stdout, l.ID)
		return nil
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(l); err != nil {
		return errors.Join(err, l.Down())
	}
	fmt.Fprintf(stderr, "lab %s is up; Ctrl-C (or SIGTERM) tears it down\n", l.ID)
	<-ctx.Done()
	return l.Down()
}

func cmdDown(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	stale := fs.Bool("all-stale", false, "remove every lab whose owner process is gone")
	all := fs.Bool("all", false, "remove every lab on this machine, running or not")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	// Teardown must finish even after a Ctrl-C.
	ctx = context.WithoutCancel(ctx)
	switch {
	case *stale && fs.NArg() == 0 && !*all:
		ids, err := lab.CleanStale(ctx, stderr)
		fmt.Fprintf(stdout, "removed %d stale lab(s) %v\n", len(ids), ids)
		return err
	case *all && fs.NArg() == 0 && !*stale:
		ids, err := lab.DestroyAll(ctx, stderr)
		fmt.Fprintf(stdout, "removed %d lab(s) %v\n", len(ids), ids)
		return err
	case fs.NArg() == 1 && !*stale && !*all:
		return lab.Destroy(ctx, fs.Arg(0))
	default:
		return errUsage
	}
}

func cmdLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var cfg lab.LoadConfig
	fs.StringVar(&cfg.URL, "url", "", "URL to GET")
	fs.IntVar(&cfg.Concurrency, "concurrency", 4, "parallel clients")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long (0: until SIGINT/SIGTERM, at most --max-duration)")
	fs.DurationVar(&cfg.MaxDuration, "max-duration", 10*time.Minute, "hard bound on the run")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "per-request timeout")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if cfg.URL == "" || fs.NArg() != 0 {
		return errUsage
	}
	res, err := lab.RunLoad(ctx, cfg)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

func cmdArtifact(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("artifact", flag.ContinueOnError)
	out := fs.String("out", ".", "output directory")
	version := fs.String("version", "", "release version (also the VERSION file)")
	var b lab.Build
	fs.BoolVar(&b.Broken, "broken", false, "build the broken app (its /health answers 500)")
	fs.Float64Var(&b.ErrorRate, "error-rate", 0, "build an app that answers this share of / with 500 (0.05: 5%) and stays healthy")
	fs.DurationVar(&b.Slow, "slow", 0, "build an app that answers / this much later (150ms) and stays healthy")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *version == "" || fs.NArg() != 0 {
		return errUsage
	}
	path, err := lab.BuildArtifactOf(ctx, *out, *version, b)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, path)
	return nil
}

// cmdRelay serves HAProxy's runtime API over TCP with an audit log (see
// lab.RunHAProxyRelay). Not in the usage: lab.Up starts it.
func cmdRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	var cfg lab.RelayConfig
	fs.StringVar(&cfg.Listen, "listen", "", "TCP address to listen on")
	fs.StringVar(&cfg.Socket, "socket", "", "HAProxy runtime API unix socket")
	fs.StringVar(&cfg.Log, "log", "", "audit log to append to")
	fs.StringVar(&cfg.Ready, "ready", "", "file to write the PID to once listening")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if cfg.Listen == "" || cfg.Socket == "" || cfg.Log == "" || fs.NArg() != 0 {
		return errUsage
	}
	cfg.Errors = stderr
	return lab.RunHAProxyRelay(ctx, cfg)
}
