// Package installer installs, upgrades and removes the drover agent on hosts
// over SSH: `drover agent install HOST...` and `drover agent uninstall`.
//
// Per host, Install uploads the drover binary for the host's architecture
// (only when its sha256 differs), writes agent.yaml and the cluster CA (only
// when changed), a fresh join token when the host is not enrolled yet, and
// (re)starts the agent when something changed or it is not running: under
// systemd when the host runs it, else under a small POSIX sh supervisor
// (<Dir>/run/supervise.sh) started detached from the SSH session. A run with
// nothing to change changes nothing and leaves the running agent alone.
//
// Every remote command is safe to re-run. The join token is written with
// SFTP (mode 0600) and never appears in a command, an error or Out.
package installer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/transport/ssh"
)

// DefaultDir is the install dir when Options.Dir is empty.
const DefaultDir = "/opt/drover-agent"

// DefaultParallel is how many hosts are worked on at once by default.
const DefaultParallel = 8

// Result actions.
const (
	ActionInstalled   = "installed"   // there was no agent binary on the host
	ActionUpgraded    = "upgraded"    // something was written, or the agent was (re)started
	ActionUnchanged   = "unchanged"   // nothing to do: nothing written, nothing restarted
	ActionUninstalled = "uninstalled" // something was stopped or removed
	ActionAbsent      = "absent"      // uninstall found nothing
)

// Supervisors: what keeps the agent running.
const (
	SupervisorSystemd = "systemd"
	SupervisorDrover  = "supervisor" // <Dir>/run/supervise.sh
)

// Target is a host to install on.
type Target struct {
	Name string     // the agent's name (its config's name:), used in messages
	Host plans.Host // Address (host:port) is dialled; empty: Name
}

// Conn is what installing needs of a connection to a host; *ssh.Client
// satisfies it.
type Conn interface {
	Run(ctx context.Context, cmd string, out io.Writer) error
	Put(ctx context.Context, path string, r io.Reader, mode fs.FileMode) error
	Close() error
}

// Options configure Install and Uninstall. Uninstall uses Dir, SSH (or
// Dial), Out and Parallel only.
type Options struct {
	// Dir is the install dir on the hosts (default /opt/drover-agent):
	// bin/drover, agent.yaml, ca.crt, join.token, state/, and run/ for
	// drover's supervisor.
	Dir string
	// Binary returns the local drover binary for a GOARCH (amd64, arm64,
	// arm); its error should say how to get one. Called once per GOARCH.
	Binary func(goarch string) (path string, err error)
	// CA is the cluster CA certificate (PEM).
	CA []byte
	// Coordinators are the API addresses (host:port) the agent dials.
	Coordinators []string
	// Token returns a fresh single-use join token for a host; called only
	// for hosts that are not enrolled yet (no state/agent.crt).
	Token func(ctx context.Context, host string) (string, error)
	// SSH is how hosts are reached; host keys are verified.
	SSH ssh.Config
	// Dial replaces SSH when set (tests; other transports).
	Dial func(ctx context.Context, t Target) (Conn, error)
	// Out gets one progress line per host and step; nil: discarded.
	Out io.Writer
	// Parallel bounds how many hosts are worked on at once (default 8).
	Parallel int
}

// Result is what was done on one host.
type Result struct {
	Host   string
	Action string // installed | upgraded | unchanged | uninstalled | absent
	// Supervisor is what runs the agent: systemd or supervisor; for
	// Uninstall, what was stopped ("" when nothing ran).
	Supervisor string
}

// Install installs or upgrades the agent on every target, in parallel. It
// returns the results of the hosts that succeeded, in target order, and the
// others' errors joined, each naming its host and step.
func Install(ctx context.Context, targets []Target, opts Options) ([]Result, error) {
	if err := opts.checkInstall(); err != nil {
		return nil, err
	}
	bins := &binaries{fn: opts.Binary, m: map[string]*localBinary{}}
	return forEach(ctx, targets, opts, func(ctx context.Context, h *hostRun) (Result, error) {
		return h.install(ctx, opts, bins)
	})
}

// Uninstall stops the agent on every target and removes its install dir
// (and systemd unit), in parallel. Hosts with nothing installed report
// ActionAbsent.
func Uninstall(ctx context.Context, targets []Target, opts Options) ([]Result, error) {
	if err := opts.checkDir(); err != nil {
		return nil, err
	}
	return forEach(ctx, targets, opts, func(ctx context.Context, h *hostRun) (Result, error) {
		return h.uninstall(ctx)
	})
}

func (o *Options) checkDir() error {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if err := checkDir(o.Dir); err != nil {
		return fmt.Errorf("agent install: %w", err)
	}
	return nil
}

func (o *Options) checkInstall() error {
	if err := o.checkDir(); err != nil {
		return err
	}
	switch {
	case o.Binary == nil:
		return errors.New("agent install: no drover binary (Options.Binary is nil)")
	case len(o.Coordinators) == 0:
		return errors.New("agent install: no coordinator addresses for the agents to dial")
	case !bytes.Contains(o.CA, []byte("-----BEGIN CERTIFICATE-----")):
		return errors.New("agent install: the cluster CA certificate (PEM) is missing")
	}
	for _, c := range o.Coordinators {
		if c == "" || strings.ContainsAny(c, " \t\r\n") {
			return fmt.Errorf("agent install: bad coordinator address %q", c)
		}
	}
	return nil
}

// hostRun is one host's connection and progress output.
type hostRun struct {
	t   Target
	l   layout
	c   Conn
	out *progress
}

// forEach connects to every target (at most Parallel at once) and runs fn.
func forEach(ctx context.Context, targets []Target, opts Options, fn func(context.Context, *hostRun) (Result, error)) ([]Result, error) {
	seen := map[string]bool{}
	for _, t := range targets {
		switch {
		case t.Name == "":
			return nil, fmt.Errorf("agent install: a host has no name (address %q)", t.Host.Address)
		case seen[t.Name]:
			return nil, fmt.Errorf("agent install: host %s is listed twice", t.Name)
		}
		seen[t.Name] = true
	}
	dial := opts.Dial
	if dial == nil {
		d, err := ssh.NewDialer(opts.SSH)
		if err != nil {
			return nil, fmt.Errorf("agent install: %w", err)
		}
		dial = func(ctx context.Context, t Target) (Conn, error) {
			addr := t.Host.Address
			if addr == "" {
				addr = t.Name
			}
			return d.Dial(ctx, addr)
		}
	}
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	out := &progress{w: opts.Out}
	l := newLayout(opts.Dir)

	results := make([]Result, len(targets))
	errs := make([]error, len(targets))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = fmt.Errorf("%s: %w", t.Name, ctx.Err())
				return
			}
			defer func() { <-sem }()
			c, err := dial(ctx, t)
			if err != nil {
				errs[i] = fmt.Errorf("%s: connect: %w", t.Name, err)
				return
			}
			defer c.Close()
			results[i], errs[i] = fn(ctx, &hostRun{t: t, l: l, c: c, out: out})
		}()
	}
	wg.Wait()
	var ok []Result
	for i := range targets {
		if errs[i] == nil {
			ok = append(ok, results[i])
		}
	}
	return ok, errors.Join(errs...)
}

// install is Install on one host.
func (h *hostRun) install(ctx context.Context, opts Options, bins *binaries) (Result, error) {
	name, l := h.t.Name, h.l
	res := Result{Host: name}

	out, err := h.run(ctx, probeScript(l))
	if err != nil {
		return res, h.fail("inspect host", err)
	}
	p, err := parseProbe(out)
	if err != nil {
		return res, h.fail("inspect host", err)
	}
	if p.os != "" && p.os != "Linux" {
		return res, h.fail("detect architecture", fmt.Errorf("%s hosts are not supported (Linux only)", p.os))
	}
	arch, err := goarch(p.arch)
	if err != nil {
		return res, h.fail("detect architecture", err)
	}
	res.Supervisor = SupervisorDrover
	if p.systemd {
		res.Supervisor = SupervisorSystemd
	}
	h.out.printf("%s: connected: linux/%s, %s", name, arch, map[bool]string{true: "systemd", false: "no systemd"}[p.systemd])

	bin, err := bins.get(arch)
	if err != nil {
		return res, h.fail("drover binary for linux/"+arch, err)
	}

	// What to write.
	type file struct {
		step, path string
		mode       fs.FileMode
		data       []byte // nil for the binary
	}
	var writes []file
	binWas := p.sums[l.Bin]
	if binWas != bin.sum {
		writes = append(writes, file{step: "upload drover", path: l.Bin, mode: 0o755})
	}
	for _, f := range []file{
		{step: "write ca.crt", path: l.CA, mode: 0o644, data: opts.CA},
		{step: "write agent.yaml", path: l.Config, mode: 0o644, data: []byte(agentConfig(name, opts.Coordinators, l))},
	} {
		if p.sums[f.path] != sum(f.data) {
			writes = append(writes, f)
		}
	}
	scriptChanged := false
	if p.systemd {
		if data := []byte(unitFile(l)); p.sums[l.Unit] != sum(data) {
			writes = append(writes, file{step: "write systemd unit " + l.Unit, path: l.Unit, mode: 0o644, data: data})
		}
	} else if data := []byte(supervisorScript(l)); p.sums[l.Script] != sum(data) {
		writes = append(writes, file{step: "write supervise.sh", path: l.Script, mode: 0o755, data: data})
		scriptChanged = true
	}
	if !p.enrolled {
		if opts.Token == nil {
			return res, h.fail("join token", errors.New("the host is not enrolled and no join token source was given"))
		}
		tok, err := opts.Token(ctx, name)
		if err != nil {
			return res, h.fail("join token", err)
		}
		tok = strings.TrimSpace(tok)
		if tok == "" {
			return res, h.fail("join token", errors.New("got an empty token"))
		}
		writes = append(writes, file{step: "write join.token", path: l.Token, mode: 0o600, data: []byte(tok)})
	}

	if len(writes) > 0 {
		if _, err := h.run(ctx, prepareScript(l)); err != nil {
			return res, h.fail("create "+l.Dir, err)
		}
	}
	for _, f := range writes {
		var err error
		if f.data == nil {
			err = h.upload(ctx, bin, l.Bin)
		} else {
			err = h.c.Put(ctx, f.path, bytes.NewReader(f.data), f.mode)
		}
		if err != nil {
			return res, h.fail(f.step, err)
		}
		switch {
		case f.data == nil:
			h.out.printf("%s: uploaded drover (linux/%s, %s, sha256 %.12s)", name, arch, size(bin.size), bin.sum)
		case f.path == l.Token:
			h.out.printf("%s: wrote a join token to %s (not enrolled yet)", name, l.Token)
		default:
			h.out.printf("%s: wrote %s", name, f.path)
		}
	}
	changed := len(writes) > 0

	// (Re)start.
	restarted := false
	switch {
	case p.systemd:
		if changed || !p.running || !p.enabled {
			if _, err := h.run(ctx, startSystemdScript(l)); err != nil {
				return res, h.fail("start agent (systemd)", err)
			}
			restarted = true
			h.out.printf("%s: agent (re)started by systemd (%s)", name, unitName)
		}
	case scriptChanged || !p.running:
		h.out.printf("no systemd on %s: running under drover's supervisor, %s", name, l.Script)
		if _, err := h.run(ctx, startSupervisorScript(l)); err != nil {
			return res, h.fail("start supervisor", err)
		}
		restarted = true
		h.out.printf("%s: supervisor started; it runs the agent (log: %s)", name, l.Log)
	case changed:
		if _, err := h.run(ctx, restartAgentScript(l)); err != nil {
			return res, h.fail("restart agent", err)
		}
		restarted = true
		h.out.printf("%s: agent restarted by drover's supervisor, %s", name, l.Script)
	}

	switch {
	case binWas == "":
		res.Action = ActionInstalled
	case changed || restarted:
		res.Action = ActionUpgraded
	default:
		res.Action = ActionUnchanged
	}
	h.out.printf("%s: %s (%s)", name, res.Action, res.Supervisor)
	return res, nil
}

// uninstall is Uninstall on one host.
func (h *hostRun) uninstall(ctx context.Context) (Result, error) {
	res := Result{Host: h.t.Name}
	out, err := h.run(ctx, uninstallScript(h.l))
	if err != nil {
		return res, h.fail("uninstall", err)
	}
	var found []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "found" {
			found = f[1:]
		}
	}
	res.Action = ActionAbsent
	for _, f := range found {
		res.Action = ActionUninstalled
		switch f {
		case "systemd":
			res.Supervisor = SupervisorSystemd
			h.out.printf("%s: stopped and removed %s", h.t.Name, h.l.Unit)
		case "supervisor":
			res.Supervisor = SupervisorDrover
			h.out.printf("%s: stopped drover's supervisor and the agent", h.t.Name)
		case "files":
			h.out.printf("%s: removed %s", h.t.Name, h.l.Dir)
		}
	}
	h.out.printf("%s: %s", h.t.Name, res.Action)
	return res, nil
}

// run runs a script, returning its output; a failure carries the output's end.
func (h *hostRun) run(ctx context.Context, script string) (string, error) {
	var buf bytes.Buffer
	if err := h.c.Run(ctx, script, &buf); err != nil {
		if buf.Len() > 0 {
			return buf.String(), fmt.Errorf("%w: %s", err, tail(buf.String()))
		}
		return buf.String(), err
	}
	return buf.String(), nil
}

func (h *hostRun) fail(step string, err error) error {
	return fmt.Errorf("%s: %s: %w", h.t.Name, step, err)
}

func (h *hostRun) upload(ctx context.Context, bin *localBinary, dst string) error {
	f, err := os.Open(bin.path)
	if err != nil {
		return err
	}
	defer f.Close()
	return h.c.Put(ctx, dst, f, 0o755)
}

// binaries caches the local binary (path, sha256) per GOARCH.
type binaries struct {
	fn func(goarch string) (string, error)
	mu sync.Mutex
	m  map[string]*localBinary
}

type localBinary struct {
	once sync.Once
	path string
	sum  string
	size int64
	err  error
}

func (b *binaries) get(goarch string) (*localBinary, error) {
	b.mu.Lock()
	lb, ok := b.m[goarch]
	if !ok {
		lb = &localBinary{}
		b.m[goarch] = lb
	}
	b.mu.Unlock()
	lb.once.Do(func() {
		lb.path, lb.err = b.fn(goarch)
		if lb.err != nil {
			return
		}
		lb.sum, lb.size, lb.err = fileSum(lb.path)
	})
	return lb, lb.err
}

func fileSum(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if !st.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%s is not a regular file", path)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// progress writes whole lines from concurrent hosts.
type progress struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *progress) printf(format string, args ...any) {
	if p.w == nil {
		return
	}
	line := fmt.Sprintf(format, args...) + "\n"
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.w, line)
}
