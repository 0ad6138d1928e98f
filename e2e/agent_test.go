package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
	"github.com/drover-dev/drover/transport/agent/wire"
)

// agentDir is where `drover agent install` puts the agent on lab hosts:
// under /srv, which each lab host sees as its own.
const agentDir = "/srv/drover-agent"

// hostsOnline returns the agents the cluster lists as online.
func (c *cluster) hostsOnline() map[string]api.AgentInfo {
	c.t.Helper()
	d := c.startWith(c.env(), "hosts")
	if code := d.wait(c.t); code != 0 {
		c.t.Fatalf("drover hosts: exit %d: %s", code, d.stderr.String())
	}
	checkJSON(c.t, "agent", []byte(d.stdout.text()), true)
	var hs []api.AgentInfo
	if err := json.Unmarshal([]byte(d.stdout.text()), &hs); err != nil {
		c.t.Fatalf("drover hosts -o json: %v\n%s", err, d.stdout.text())
	}
	out := map[string]api.AgentInfo{}
	for _, h := range hs {
		if h.State == "online" {
			out[h.Name] = h
		}
	}
	return out
}

func (c *cluster) waitAgents(names ...string) {
	c.t.Helper()
	var on map[string]api.AgentInfo
	testwait.Within(c.t, 30*time.Second, fmt.Sprintf("agents %v online", names), func() bool {
		on = c.hostsOnline()
		for _, n := range names {
			if _, ok := on[n]; !ok {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("online: %v", on) })
}

// agentPid is the pid of the agent process the supervisor runs on host.
func (c *cluster) agentPid(host string) string {
	c.t.Helper()
	cmd, err := c.lab.SSH(context.Background(), host, "pgrep -P \"$(cat "+agentDir+"/run/supervise.pid)\" -f 'drover agent run'")
	if err != nil {
		c.t.Fatal(err)
	}
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("find the agent of %s: %v (%s)", host, err, out)
	}
	return strings.TrimSpace(strings.Fields(string(out))[0])
}

// TestAgents is an operator moving half of the fleet to agents: install
// over SSH, a mixed deploy under load, an agent killed mid-stage, join
// tokens that cannot be replayed, a certificate from another CA, and the
// agent's own fencing of stale leaders.
func TestAgents(t *testing.T) {
	c := newCluster(t, 6)
	agents := []string{"web4", "web5", "web6"}
	mixed := func(p *lab.PlanParams) {
		p.HAProxyTCP, p.MinHealthyTime, p.AgentHosts = true, 200*time.Millisecond, agents
	}
	sshOnly := func(p *lab.PlanParams) { p.HAProxyTCP = true }
	v1 := c.plan("v1", false, "2", sshOnly)
	if code, d := c.runWith(c.env(), "deploy", v1); code != 0 {
		t.Fatalf("deploy v1 over SSH: exit %d\n%s", code, d.stdout.text())
	}

	t.Run("install over SSH", func(t *testing.T) {
		c.t = t
		install := func() map[string]struct{ Action, Supervisor string } {
			out := c.cli(0, append([]string{"agent", "install", "--plan", v1, "--dir", agentDir}, agents...)...)
			checkJSON(t, "agent-install", []byte(out), true)
			var rs []struct{ Host, Action, Supervisor string }
			if err := json.Unmarshal([]byte(out), &rs); err != nil {
				t.Fatal(err)
			}
			by := map[string]struct{ Action, Supervisor string }{}
			for _, r := range rs {
				by[r.Host] = struct{ Action, Supervisor string }{r.Action, r.Supervisor}
			}
			return by
		}
		first := install()
		if len(first) != len(agents) {
			t.Errorf("install reports %d hosts, want %d: %+v", len(first), len(agents), first)
		}
		for a, r := range first {
			if r.Supervisor != "supervisor" {
				t.Errorf("install of %s: %+v; want drover's supervisor (no systemd in the lab)", a, r)
			}
		}
		c.waitAgents(agents...)
		again := install()
		for _, a := range agents {
			if again[a].Action != "unchanged" {
				t.Errorf("second install of %s was not a no-op: %+v", a, again[a])
			}
		}
		for name, h := range c.hostsOnline() {
			if h.Version == "" || h.LastHeartbeat.IsZero() {
				t.Errorf("%s listed without version or heartbeat: %+v", name, h)
			}
		}
	})

	t.Run("mixed fleet under load", func(t *testing.T) {
		c.t = t
		c.underLoad(2, func() {
			if code, d := c.runWith(c.env(), "deploy", c.plan("v2", false, "2", mixed)); code != 0 {
				t.Fatalf("mixed deploy: exit %d\n%s\n%s", code, d.stdout.text(), d.stderr.String())
			}
		})
		c.expectAllOn("v2")
	})

	t.Run("agent killed mid-stage rolls back", func(t *testing.T) {
		c.t = t
		// A hook that takes a while, so that the kill lands while the
		// agent is running an action of the install stage.
		slowInstall := func(p *lab.PlanParams) { p.Extra = "hooks:\n  after_install: [\"sleep 2\"]\n" }
		c.underLoad(2, func() {
			d := c.startWith(c.env(), "deploy", c.plan("v3", false, "2", mixed, slowInstall))
			d.stdout.waitFor(t, "web4 installing", func(ev orchestrator.Event) bool {
				return ev.Kind == orchestrator.EventStage && ev.Host == "web4" && ev.Stage == "install"
			})
			pid := c.agentPid("web4")
			testwait.Within(t, 30*time.Second, "web4's agent running the hook", func() bool { return runsCommand(pid, "sleep 2") })
			// The lab's hosts share the test's PID namespace: kill at once,
			// not through an SSH login that a loaded machine can make
			// outlast the hook.
			n, err := strconv.Atoi(pid)
			if err == nil {
				err = syscall.Kill(n, syscall.SIGKILL)
			}
			if err != nil {
				t.Fatalf("kill the agent of web4 (pid %s): %v", pid, err)
			}
			if code := d.wait(t); code != 3 {
				t.Fatalf("deploy with web4's agent killed: exit %d, want 3 (rolled back)\n%s\n%s", code, d.stdout.text(), d.stderr.String())
			}
			var failed orchestrator.Event
			for _, ev := range d.stdout.all() {
				if ev.Kind == orchestrator.EventHostFailed && ev.Host == "web4" {
					failed = ev
				}
			}
			if failed.Host == "" {
				t.Errorf("web4 never failed:\n%s", d.stdout.text())
			}
			t.Logf("web4 failed: %s", failed.Error)
		})
		c.expectAllOn("v2")
	})

	t.Run("restarted agent reconnects and deploys", func(t *testing.T) {
		c.t = t
		c.waitAgents(agents...)
		if code, d := c.runWith(c.env(), "deploy", c.plan("v4", false, "2", mixed)); code != 0 {
			t.Fatalf("deploy after the agent restarted: exit %d\n%s", code, d.stdout.text())
		}
		c.expectAllOn("v4")
	})

	t.Run("preflight names an offline agent", func(t *testing.T) {
		c.t = t
		c.cli(0, "agent", "uninstall", "--plan", v1, "--dir", agentDir, "web6")
		before := len(c.audit())
		code, d := c.runWith(c.env(), "deploy", c.plan("v5", false, "2", mixed))
		if code != 2 || !strings.Contains(d.stderr.String(), "web6") || !strings.Contains(d.stderr.String(), "offline") {
			t.Errorf("deploy with web6's agent gone: exit %d, stderr %q; want exit 2 naming web6 offline", code, d.stderr.String())
		}
		if after := changes(c.audit()[before:]); len(after) > 0 {
			// The preflight only reads; nothing may have changed.
			for _, e := range after {
				if e.Where == "lb" || strings.Contains(e.Command, "releases/") && strings.Contains(e.Command, "mv ") {
					t.Errorf("the refused deploy changed %s: %q", e.Where, e.Command)
				}
			}
		}
		// web6 is still enrolled in the cluster: taking its name over with a
		// new key needs --replace (issue 8, finding 2).
		code, d = c.runWith(c.env(), "agent", "install", "--plan", v1, "--dir", agentDir, "web6")
		if code == 0 || !strings.Contains(d.stderr.String()+d.stdout.text(), "--replace") {
			t.Errorf("reinstall of an enrolled name without --replace: exit %d, output %q %q; want a refusal pointing at --replace",
				code, d.stdout.text(), d.stderr.String())
		}
		c.cli(0, "agent", "install", "--plan", v1, "--dir", agentDir, "--replace", "web6")
		c.waitAgents(agents...)
	})

	t.Run("join token replayed", func(t *testing.T) {
		c.t = t
		tok := c.newToken("agent", "token", "create", "probe1", "--ttl", "5m")
		first := c.probeAgent("probe1", tok)
		defer first.stop(t)
		c.waitAgents("probe1")
		second := c.probeAgent("probe2", tok)
		code := second.wait(t)
		if code == 0 || !strings.Contains(second.stderr.String(), "already used") {
			t.Fatalf("replayed join token: exit %d, stderr %q; want a refusal saying it was already used", code, second.stderr.String())
		}
		// Revoked: its connection is dropped and it cannot come back.
		c.cli(0, "agent", "revoke", "probe1")
		testwait.Within(t, 30*time.Second, "probe1 refused on reconnecting", func() bool {
			return strings.Contains(first.stderr.String(), "HTTP 403")
		})
		d := c.startWith(c.env(), "hosts")
		if code := d.wait(t); code != 0 {
			t.Fatalf("drover hosts: exit %d", code)
		}
		var hs []api.AgentInfo
		must(t, json.Unmarshal([]byte(d.stdout.text()), &hs))
		for _, h := range hs {
			if h.Name == "probe1" && h.State != "revoked" {
				t.Errorf("probe1 after revoke: %+v, want revoked", h)
			}
		}
		if _, ok := c.hostsOnline()["probe1"]; ok {
			t.Error("a revoked agent is online")
		}
	})

	t.Run("certificate from another CA", func(t *testing.T) {
		c.t = t
		other := filepath.Join(c.lab.Dir, "other-ca")
		must(t, pki.Init(other))
		ca, err := pki.LoadCA(other)
		must(t, err)
		state := c.probeState("foreign")
		crt, key, err := ca.Issue(state, pki.IssueRequest{Name: "foreign", Role: pki.RoleAgent}, false)
		must(t, err)
		must(t, os.Rename(crt, filepath.Join(state, "agent.crt")))
		must(t, os.Rename(key, filepath.Join(state, "agent.key")))
		// The agent itself will not use a certificate its CA does not
		// sign: it stops at once, saying why.
		d := c.probeAgent("foreign", "")
		if code := d.wait(t); code == 0 || !strings.Contains(d.stderr.String(), "certificate") {
			t.Errorf("the agent with a foreign certificate: exit %d, log:\n%s", code, d.stderr.String())
		}
		// A client that does present it to the leader is refused by the
		// TLS handshake (curl offers the certificate whatever the CA).
		ask := c.lab.Command(context.Background(), "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
			"--cacert", filepath.Join(c.TLSDir, "ca.crt"), "--cert", filepath.Join(state, "agent.crt"),
			"--key", filepath.Join(state, "agent.key"), "https://"+lab.APIAddr(c.nodes[0])+wire.ConnectPath)
		out, err := ask.Output()
		switch code := strings.TrimSpace(string(out)); code {
		case "000", "401", "403": // the handshake failed, or the request was refused
		default:
			t.Errorf("connect with a foreign certificate: HTTP %s (curl: %v), want refused", code, err)
		}
		if _, ok := c.hostsOnline()["foreign"]; ok {
			t.Fatal("an agent with a certificate from another CA is online")
		}
	})

	t.Run("stale term rejected by the agent", func(t *testing.T) {
		c.t = t
		// A real agent, on web1, connected to a stand-in leader (the
		// coordinator's own agent hub behind drover-lab agent-probe) that
		// sends actions under terms of the test's choosing.
		agentCfg := c.probeConfig("stale", probeAddr, "probe")
		start := func() *lab.Proc {
			p, err := c.lab.Start(context.Background(), "web1", "probe-agent-"+strconv.FormatInt(time.Now().UnixNano(), 10),
				[]string{droverBin, "agent", "run", "--config", agentCfg}, nil)
			must(t, err)
			return p
		}
		p := start()
		rep := c.runProbe("--terms", "7,9,8", "--cmd", "echo ran")
		t.Logf("terms sent 7, 9, 8: %+v", rep.Terms)
		if len(rep.Terms) != 3 {
			t.Fatalf("probe ran %d terms, want 3", len(rep.Terms))
		}
		want := []bool{false, false, true} // fenced?
		for i, r := range rep.Terms {
			if r.Fenced != want[i] {
				t.Errorf("term %d: fenced=%v (%s), want fenced=%v", r.Term, r.Fenced, r.Error, want[i])
			}
			if !r.Fenced && strings.TrimSpace(r.Output) != "ran" {
				t.Errorf("term %d: output %q, want \"ran\"", r.Term, r.Output)
			}
		}
		// The agent remembers the highest term across a restart.
		must(t, p.Kill())
		p = start()
		defer p.Kill()
		rep = c.runProbe("--terms", "8", "--cmd", "echo ran")
		if len(rep.Terms) != 1 || !rep.Terms[0].Fenced {
			t.Errorf("after a restart, term 8: %+v, want rejected (it has seen 9)", rep.Terms)
		}
	})

	t.Run("figures", func(t *testing.T) {
		c.t = t
		for _, a := range agents {
			pid, _ := strconv.Atoi(c.agentPid(a))
			t.Logf("agent %s idle RSS: %d KiB", a, lab.RSSKiB(pid))
		}
		agentCfg := c.probeConfig("rtt", probeAddr, "probe")
		p, err := c.lab.Start(context.Background(), "web1", "probe-agent-rtt", []string{droverBin, "agent", "run", "--config", agentCfg}, nil)
		must(t, err)
		defer p.Kill()
		h, _ := c.lab.Host("web1")
		rep := c.runProbe("--rounds", "200", "--cmd", "true", "--ssh-host", h.SSHAddress,
			"--identity", c.lab.IdentityFile, "--known-hosts", c.lab.KnownHosts)
		if rep.AgentRoundTrip == nil || rep.SSHRoundTrip == nil {
			t.Fatalf("probe report without round trips: %+v", rep)
		}
		t.Logf("round trip of 'true' (200 runs): agent median %.2f ms p90 %.2f ms; SSH (one connection) median %.2f ms p90 %.2f ms",
			rep.AgentRoundTrip.MedianMS, rep.AgentRoundTrip.P90MS, rep.SSHRoundTrip.MedianMS, rep.SSHRoundTrip.P90MS)
		report(t, fmt.Sprintf("rtt\t%.2f\t%.2f\t%.2f\t%.2f\n", rep.AgentRoundTrip.MedianMS, rep.AgentRoundTrip.P90MS, rep.SSHRoundTrip.MedianMS, rep.SSHRoundTrip.P90MS))
		p.Kill()

		// What a connected agent costs the coordinator: the probe's heap
		// and RSS with 200 agents connected (real agents, in one process).
		const n = 200
		load := c.lab.Command(context.Background(), os.Getenv("DROVER_LAB_BIN"), "agent-load", "--coordinator", probeAddr,
			"--ca", filepath.Join(c.TLSDir, "ca.crt"), "--n", strconv.Itoa(n))
		must(t, load.Start())
		defer func() { load.Process.Signal(os.Interrupt); load.Wait() }()
		rep = c.runProbe("--agents", strconv.Itoa(n))
		perHeap := float64(rep.HeapAfterKiB-rep.HeapBeforeKiB) / n
		perRSS := float64(int64(rep.RSSAfterKiB)-int64(rep.RSSBeforeKiB)) / n
		t.Logf("coordinator side, %d agents: heap %d -> %d KiB (%.1f KiB per agent), RSS %d -> %d KiB (%.1f KiB per agent)",
			n, rep.HeapBeforeKiB, rep.HeapAfterKiB, perHeap, rep.RSSBeforeKiB, rep.RSSAfterKiB, perRSS)
		report(t, fmt.Sprintf("mem\t%.1f\t%.1f\n", perHeap, perRSS))
	})
}

// probeAddr is where drover-lab agent-probe listens: the control node.
const probeAddr = "10.200.0.1:7999"

// probeConfig writes the config of a probe agent that dials addr.
func (c *cluster) probeConfig(name, addr, token string) string {
	c.t.Helper()
	dir := filepath.Join(c.lab.Dir, "probe-"+name+"-"+strconv.FormatInt(time.Now().UnixNano(), 10))
	return c.agentConfig(dir, "probe-"+name, []string{addr}, token)
}

// agentConfig writes dir/agent.yaml for an agent named name that dials
// coords, with its state in dir/state and a join token when token is set.
func (c *cluster) agentConfig(dir, name string, coords []string, token string) string {
	c.t.Helper()
	state := filepath.Join(dir, "state")
	must(c.t, os.MkdirAll(state, 0o700))
	cfg := fmt.Sprintf("name: %s\ncoordinators: [\"%s\"]\nca: %s\nstate_dir: %s\ntoken_file: %s\n",
		name, strings.Join(coords, `", "`), filepath.Join(c.TLSDir, "ca.crt"), state, filepath.Join(dir, "join.token"))
	if token != "" {
		must(c.t, os.WriteFile(filepath.Join(dir, "join.token"), []byte(token+"\n"), 0o600))
	}
	must(c.t, os.WriteFile(filepath.Join(dir, "agent.yaml"), []byte(cfg), 0o600))
	return filepath.Join(dir, "agent.yaml")
}

// runProbe runs drover-lab agent-probe in the control namespace and
// returns its report.
func (c *cluster) runProbe(args ...string) lab.ProbeReport {
	c.t.Helper()
	args = append([]string{"agent-probe", "--listen", probeAddr, "--tls-dir", c.TLSDir}, args...)
	cmd := c.lab.Command(context.Background(), os.Getenv("DROVER_LAB_BIN"), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("agent-probe %v: %v\n%s", args, err, stderr.String())
	}
	var rep lab.ProbeReport
	if err := json.Unmarshal(out, &rep); err != nil {
		c.t.Fatalf("agent-probe report: %v\n%s", err, out)
	}
	return rep
}

// probeState is the state dir of a probe agent.
func (c *cluster) probeState(name string) string {
	c.t.Helper()
	dir := filepath.Join(c.lab.Dir, "probe-"+name, "state")
	must(c.t, os.MkdirAll(dir, 0o700))
	return dir
}

// probeAgent runs a real `drover agent run` named name in the control
// namespace (an agent needs no particular host), with a join token when
// token is set.
func (c *cluster) probeAgent(name, token string) *drover {
	c.t.Helper()
	var coords []string
	for _, n := range c.nodes {
		coords = append(coords, lab.APIAddr(n))
	}
	cfg := c.agentConfig(filepath.Dir(c.probeState(name)), name, coords, token)
	return c.launch(nil, "agent", "run", "--config", cfg)
}

// stop ends a long-running drover (an agent) and waits for it.
func (d *drover) stop(t *testing.T) {
	t.Helper()
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(os.Interrupt)
	d.wait(t)
}

// runsCommand reports whether a descendant of pid (the PID space is the
// machine's, shared by every lab host) runs exactly cmd.
func runsCommand(pid, cmd string) bool {
	want := strings.ReplaceAll(cmd, " ", "\x00") + "\x00"
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want {
			continue
		}
		for dir := filepath.Dir(p); dir != "/proc"; {
			ppid := parentPid(dir)
			if ppid == "" || ppid == "0" || ppid == "1" {
				break
			}
			if ppid == pid {
				return true
			}
			dir = "/proc/" + ppid
		}
	}
	return false
}

// parentPid reads the parent of the process whose /proc dir is dir.
func parentPid(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return ""
	}
	// pid (comm) state ppid ...: comm may hold spaces, so cut after ")".
	_, rest, ok := strings.Cut(string(b), ") ")
	if f := strings.Fields(rest); ok && len(f) > 1 {
		return f[1]
	}
	return ""
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
