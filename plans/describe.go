package plans

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
)

// ArtifactDigest reads the release artifact and returns its size and
// hex-encoded sha256.
func (p *Plan) ArtifactDigest() (size int64, sha string, err error) {
	f, err := os.Open(p.Release.Artifact)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	size, err = io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", p.Release.Artifact, err)
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

// ReleaseDir is where the plan's version is unpacked on each host.
func (p *Plan) ReleaseDir() string {
	return path.Join(p.Release.Path, "releases", p.Version)
}

// CurrentLink is the symlink that points at the active release.
func (p *Plan) CurrentLink() string {
	return path.Join(p.Release.Path, "current")
}

// UploadPath is where the artifact is uploaded on each host.
func (p *Plan) UploadPath() string {
	return path.Join(p.Release.Path, ".drover", p.Version+".tar")
}

// Describe writes what `drover plan show` prints: a summary of the plan,
// then every batch, every host and every action that would run on it, in
// order, and what happens on failure. It changes nothing (it only reads the
// artifact to show its digest).
func (p *Plan) Describe(w io.Writer) error {
	size, sum, err := p.ArtifactDigest()
	if err != nil {
		return fmt.Errorf("plans: describe: %w", err)
	}
	urls := make([]string, len(p.Hosts))
	if p.Health.HTTP != nil {
		for i, h := range p.Hosts {
			if urls[i], err = p.HealthURL(h); err != nil {
				return fmt.Errorf("plans: describe: health.http.url: %w", err)
			}
		}
	}
	batches := p.Batches()
	ew := &errWriter{w: w}
	pf := ew.printf

	pf("plan %s (%s)\n", p.Name, p.Path)
	pf("  version:        %s\n", p.Version)
	pf("  artifact:       %s (%s, sha256 %s)\n", p.Release.Artifact, byteSize(size), sum)
	pf("  release:        %s on each host (keep %d releases", p.ReleaseDir(), p.Release.Keep)
	if p.Release.StripComponents > 0 {
		pf(", strip %d leading path components", p.Release.StripComponents)
	}
	pf(")\n")
	pf("  hosts:          %d", len(p.Hosts))
	if p.Inventory != "" {
		pf(", from inventory %s", p.Inventory)
	}
	if n := p.HostConcurrency(); len(p.Hosts) > n {
		pf(" (connected to, checked in preflight and pruned %d at a time: strategy.concurrency)", n)
	}
	pf("\n")
	sizes := make([]string, len(batches))
	for i, b := range batches {
		sizes[i] = strconv.Itoa(len(b))
	}
	strategy := p.strategyText()
	if c := p.Strategy.Canary; c != nil {
		strategy = fmt.Sprintf("canary %s, then %s", c.Hosts, strategy)
	}
	pf("  batches:        %d (sizes %s; strategy %s)", len(batches), strings.Join(sizes, ", "), strategy)
	if p.Strategy.Pause > 0 {
		pf(", pause %s between batches", fmtDuration(p.Strategy.Pause))
	}
	pf("\n")
	pf("  failure budget: %d of %d hosts may fail (max_failures %s); one more stops the rollout\n",
		p.MaxFailures(), len(p.Hosts), p.Strategy.MaxFailures)
	outages := p.Outages()
	switch {
	case !p.hasBalancer():
	case len(outages) > 0:
		pf("  in service:     allow_full_outage: true: THIS DEPLOY CAUSES AN OUTAGE: %d of %d batches take every server of a backend out of rotation at once\n",
			len(outages), len(batches))
	case p.Strategy.AllowFullOutage:
		pf("  in service:     allow_full_outage: true, though no batch drains a whole backend\n")
	default:
		pf("  in service:     at least %s of each backend's servers stay in rotation (strategy.min_in_service), counting servers\n", p.Strategy.MinInService)
		pf("                  already down; a host waits for one in flight to come back, or is refused\n")
	}
	if p.Rollback.Automatic {
		pf("  rollback:       automatic, to each host's previous release\n")
	} else {
		pf("  rollback:       manual (drover rollback ID)\n")
	}
	if lbs := p.LoadBalancer.HAProxy; len(lbs) > 0 {
		var where []string
		for _, lb := range lbs {
			if lb.Address != "" {
				where = append(where, "address "+lb.Address)
			} else {
				where = append(where, "socket "+lb.Socket)
			}
		}
		if len(where) == 1 {
			pf("  load balancer:  haproxy runtime API at %s\n", where[0])
		} else {
			pf("  load balancer:  %d haproxy instances, runtime API at %s (every host is drained and enabled on each)\n", len(where), strings.Join(where, ", "))
		}
	} else {
		pf("  load balancer:  none (hosts are not drained)\n")
	}
	p.describeAnalysis(pf)
	p.describeCanary(pf)
	if p.usesSSH() {
		pf("  ssh:            user %s, host key checking %s against %s, connect timeout %s, command timeout %s\n",
			p.SSH.User, p.SSH.HostKeyChecking, p.SSH.KnownHosts, fmtDuration(p.SSH.ConnectTimeout), fmtDuration(p.SSH.CommandTimeout))
	}
	for _, wh := range p.Notify.Webhooks {
		evs := wh.Events
		if len(evs) == 0 {
			evs = DefaultWebhookEvents
		}
		// The key's variable is named, never its value (the sender reads
		// it, and this machine may not be the sender).
		sig := "unsigned"
		if wh.SecretEnv != "" {
			sig = "signed with the HMAC key in $" + wh.SecretEnv + " on the sender"
		}
		pf("  webhook:        %s (%s; %s)\n", wh.URL, strings.Join(evs, ", "), sig)
	}

	n := 0
	for bi, batch := range batches {
		names := make([]string, len(batch))
		for i, h := range batch {
			names[i] = h.Name
		}
		what := plural(len(batch), "host")
		if bi == 0 && p.Strategy.Canary != nil {
			what = "canary, " + what
		}
		pf("\nbatch %d of %d (%s: %s)\n", bi+1, len(batches), what, strings.Join(names, ", "))
		if b := outages[bi]; len(b) > 0 {
			pf("  OUTAGE: every server of backend %s is out of rotation during this batch\n", strings.Join(b, ", "))
		}
		for _, h := range batch {
			p.describeHost(pf, h, urls[n], sum)
			n++
		}
		if bi == 0 && p.Strategy.Canary != nil {
			p.describeCanaryStep(pf, names)
		} else if p.HasGates() {
			pf("  analysis: with the batch back in rotation, sample gates %s every %s for %s; a failed gate fails this batch's hosts\n",
				strings.Join(p.gateNames(), ", "), fmtDuration(p.Analysis.Interval), fmtDuration(p.Analysis.Duration))
		}
		if bi < len(batches)-1 && p.Strategy.Pause > 0 {
			pf("  pause %s before the next batch\n", fmtDuration(p.Strategy.Pause))
		}
	}

	pf("\non failure:\n")
	pf("  a host fails when any action above fails, when it is not healthy within %s of its restart,\n", fmtDuration(p.Health.Deadline))
	pf("  or when a check fails during the %s watch after it became healthy.\n", fmtDuration(p.Health.MinHealthyTime))
	if p.HasGates() {
		pf("  a batch fails when an analysis gate fails: %d failing samples in a row, or no passing sample in %s.\n",
			p.Analysis.FailureLimit, fmtDuration(p.Analysis.Duration))
	}
	if budget := p.MaxFailures(); budget == 0 {
		pf("  budget: no failures allowed: the first failed host stops the rollout; no further batch starts.\n")
	} else {
		pf("  budget: up to %s tolerated and the rollout goes on; failure %d stops it.\n", plural(budget, "failed host"), budget+1)
	}
	if p.Rollback.Automatic {
		pf("  rollback (automatic): when the rollout stops, every host it touched goes back to its previous release\n")
		pf("  through the same pipeline (drain, activate the previous release, run restart, verify, enable),\n")
		pf("  with the restart, health checks and hooks of the deployment that installed that release (not this plan's),\n")
		pf("  never taking more hosts out of rotation than a batch allows.\n")
	} else {
		pf("  rollback (manual): the rollout stops and hosts stay as they are; run drover rollback ID to restore the previous release.\n")
	}
	return ew.err
}

func (p *Plan) usesSSH() bool {
	for _, h := range p.Hosts {
		if h.Transport == TransportSSH {
			return true
		}
	}
	return false
}

func (p *Plan) strategyText() string {
	b := p.Strategy.Batches
	if len(b) == 1 {
		return "batch " + b[0].String()
	}
	parts := make([]string, len(b))
	for i, s := range b {
		parts[i] = s.String()
	}
	return "batches [" + strings.Join(parts, ", ") + "], the last repeating"
}

func (p *Plan) describeHost(pf func(string, ...any), h Host, url, sum string) {
	lb := p.LoadBalancer
	rel := p.ReleaseDir()
	pf("  host %s (%s, %s)\n", h.Name, h.Address, h.Transport)
	step := func(format string, args ...any) { pf("    "+format+"\n", args...) }

	if h.Transport == TransportAgent {
		step("preflight: connect to the drover agent at %s", h.Address)
	} else {
		step("preflight: connect via ssh to %s@%s (host key checking %s, known_hosts %s, timeout %s)",
			p.SSH.User, h.Address, p.SSH.HostKeyChecking, p.SSH.KnownHosts, fmtDuration(p.SSH.ConnectTimeout))
	}
	step("preflight: check tar and sha256sum are installed and the disk under %s has room for the release", p.Release.Path)
	if len(lb.HAProxy) > 0 {
		step("preflight: lb: check %s exists in haproxy%s", h.LBServer, instances(lb))
	}
	for _, c := range p.Hooks.BeforeDrain {
		step("hook before_drain: %s (in %s)", commandText(c), p.Release.Path)
	}
	if len(lb.HAProxy) > 0 {
		step("lb: drain %s%s (set server state drain, wait for 0 sessions, then maint; timeout %s, on timeout: %s)",
			h.LBServer, instances(lb), fmtDuration(lb.DrainTimeout), lb.OnDrainTimeout)
	} else {
		step("lb: none configured, the host is not drained and keeps its traffic")
	}
	step("upload %s -> %s (sha256 %s, checked after upload)", p.Release.Artifact, p.UploadPath(), sum)
	if p.Release.StripComponents > 0 {
		step("unpack into %s (strip %d leading path components)", rel, p.Release.StripComponents)
	} else {
		step("unpack into %s", rel)
	}
	for _, c := range p.Hooks.AfterInstall {
		step("hook after_install: %s (in %s)", commandText(c), rel)
	}
	step("activate: ln -sfn releases/%s %s (atomic rename)", p.Version, p.CurrentLink())
	step("run restart: %s", commandText(p.Release.Restart))
	for _, c := range p.Hooks.AfterActivate {
		step("hook after_activate: %s (in %s)", commandText(c), rel)
	}
	hc := p.Health
	var check string
	switch {
	case hc.HTTP != nil:
		check = fmt.Sprintf("http GET %s expect %d", url, hc.HTTP.Status)
		if hc.HTTP.BodyContains != "" {
			check += fmt.Sprintf(" and a body containing %s", strconv.Quote(hc.HTTP.BodyContains))
		}
	case hc.TCP != nil:
		check = fmt.Sprintf("tcp connect to %s", joinPort(h.HostOnly(), hc.TCP.Port))
	default:
		check = fmt.Sprintf("run %s on the host, expect exit 0", commandText(hc.Command))
	}
	step("verify: %s (timeout %s each), %d consecutive passes every %s within %s, then watch %s",
		check, fmtDuration(hc.Timeout), hc.HealthyThreshold, fmtDuration(hc.Interval), fmtDuration(hc.Deadline), fmtDuration(hc.MinHealthyTime))
	if len(lb.HAProxy) > 0 {
		step("lb: enable %s%s (set server state ready), wait until UP (timeout %s)", h.LBServer, instances(lb), fmtDuration(lb.EnableTimeout))
	}
	for _, c := range p.Hooks.AfterEnable {
		step("hook after_enable: %s (in %s)", commandText(c), rel)
	}
	step("prune releases beyond keep=%d in %s/releases (never the current or the previous one)", p.Release.Keep, p.Release.Path)
}

// instances says, when there are several HAProxy instances, that a step
// acts on each.
func instances(lb LoadBalancer) string {
	if len(lb.HAProxy) < 2 {
		return ""
	}
	return fmt.Sprintf(" on each of the %d instances", len(lb.HAProxy))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

func joinPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// commandText shows a command exactly, on one line: a multi-line one as a
// Go-quoted string (unlike internal/oneline, which shortens for display).
func commandText(s string) string {
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, "\n\r") {
		return strconv.Quote(s)
	}
	return s
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB, %d bytes", float64(n)/float64(div), "KMGTP"[exp], n)
}

// errWriter keeps the first write error so Describe can print freely.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err != nil {
		return
	}
	_, e.err = fmt.Fprintf(e.w, format, args...)
}

// describeAnalysis prints the gates: what each one reads and must meet.
func (p *Plan) describeAnalysis(pf func(string, ...any)) {
	if !p.HasGates() {
		pf("  analysis:       none (hosts are judged by their health checks only)\n")
		return
	}
	a := p.Analysis
	pf("  analysis:       after each batch, every %s for %s; a gate fails after %d failing samples in a row\n",
		fmtDuration(a.Interval), fmtDuration(a.Duration), a.FailureLimit)
	for _, g := range a.Gates {
		if g.Prometheus != nil {
			pf("    gate %s: prometheus %s: %s, want %s\n", g.Name, a.Prometheus.URL, commandText(g.Prometheus.Query), g.Prometheus.Condition)
		} else {
			pf("    gate %s: haproxy counters of the servers on %s: want %s (at least %d requests a sample)\n", g.Name, p.Version, g.HAProxy, a.MinRequests)
		}
	}
}

func (p *Plan) gateNames() []string {
	var out []string
	for _, g := range p.Analysis.Gates {
		out = append(out, g.Name)
	}
	return out
}
