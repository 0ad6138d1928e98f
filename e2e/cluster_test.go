package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
)

// cluster is an operator at the lab's control node with a three-node
// coordinator cluster: real `drover server` processes, each in its own
// namespace on its own lab address, Raft and the API over mutual TLS.
type cluster struct {
	*session
	*lab.DroverCluster
	nodes []lab.Coordinator
}

func newCluster(t *testing.T, hosts int) *cluster {
	t.Helper()
	s := newSessionWith(t, lab.Options{Hosts: hosts, Coordinators: 3})
	dc, err := s.lab.NewDroverCluster(context.Background(), droverBin)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{session: s, DroverCluster: dc, nodes: s.lab.Coordinators}
	for i, n := range c.nodes {
		c.startServer(n.Name, i == 0)
		if i == 0 {
			c.waitLeader(c.nodes[:1])
		}
	}
	c.waitMembers(3)
	return c
}

func (c *cluster) node(name string) lab.Coordinator {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	c.t.Fatalf("no coordinator %s", name)
	return lab.Coordinator{}
}

// startServer runs `drover server` for node name (see DroverCluster.Start).
func (c *cluster) startServer(name string, bootstrap bool) {
	c.t.Helper()
	if _, err := c.Start(context.Background(), name, bootstrap); err != nil {
		c.t.Fatal(err)
	}
}

// env is what an operator exports to talk to the cluster.
func (c *cluster) env(nodes ...lab.Coordinator) []string { return c.Env(nodes...) }

// startWith runs drover with env in the control namespace.
func (c *cluster) startWith(env []string, args ...string) *drover {
	c.t.Helper()
	return c.launch(env, append(args, "--output", "json")...)
}

func (c *cluster) runWith(env []string, args ...string) (int, *drover) {
	c.t.Helper()
	d := c.startWith(env, args...)
	code := d.wait(c.t)
	c.t.Logf("drover %s: exit %d\nstderr: %s", strings.Join(args, " "), code, d.stderr.String())
	return code, d
}

// cli runs a short command that must exit with want.
func (c *cluster) cli(want int, args ...string) string {
	c.t.Helper()
	code, d := c.runWith(c.env(), args...)
	if code != want {
		c.t.Fatalf("drover %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, d.stdout.text(), d.stderr.String())
	}
	return d.stdout.text()
}

// members asks the given nodes (all when none) who is in the cluster.
func (c *cluster) members(nodes ...lab.Coordinator) ([]api.Member, error) {
	d := c.startWith(c.env(nodes...), "cluster", "members")
	if code := d.wait(c.t); code != 0 {
		return nil, fmt.Errorf("exit %d: %s", code, d.stderr.String())
	}
	checkJSON(c.t, "member", []byte(d.stdout.text()), true)
	var ms []api.Member
	err := json.Unmarshal([]byte(d.stdout.text()), &ms)
	return ms, err
}

// waitLeader waits until one of nodes reports a leader among them, and
// returns its name.
func (c *cluster) waitLeader(nodes []lab.Coordinator) string {
	c.t.Helper()
	var leader string
	testwait.Within(c.t, 30*time.Second, fmt.Sprintf("a leader among %v", nodes), func() bool {
		ms, err := c.members(nodes...)
		if err == nil {
			for _, m := range ms {
				if m.Leader && m.Reachable && slices.ContainsFunc(nodes, func(n lab.Coordinator) bool { return n.Name == m.ID }) {
					leader = m.ID
					return true
				}
			}
		}
		return false
	})
	return leader
}

func (c *cluster) waitMembers(n int) {
	c.t.Helper()
	var last []api.Member
	testwait.Within(c.t, 30*time.Second, fmt.Sprintf("%d reachable members", n), func() bool {
		ms, err := c.members()
		last = ms
		reachable := 0
		for _, m := range ms {
			if m.Reachable {
				reachable++
			}
		}
		return err == nil && len(ms) == n && reachable == n
	}, func() string { return fmt.Sprintf("members: %+v", last) })
}

func (c *cluster) others(name string) []lab.Coordinator {
	var out []lab.Coordinator
	for _, n := range c.nodes {
		if n.Name != name {
			out = append(out, n)
		}
	}
	return out
}

// audit is every change made to the fleet, from the hosts' and HAProxy's
// own records: each SSH command as the host's sshd ran it, each runtime API
// command as the balancer's admin endpoint received it.
type auditEntry struct {
	lab.AuditEntry
	Where string // host name, or "lb"
}

func (c *cluster) audit() []auditEntry {
	c.t.Helper()
	var out []auditEntry
	for _, h := range c.lab.HostNames() {
		es, err := c.lab.HostAudit(h)
		if err != nil {
			c.t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, auditEntry{e, h})
		}
	}
	es, err := c.lab.LBAudit()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, e := range es {
		out = append(out, auditEntry{e, "lb"})
	}
	slices.SortFunc(out, func(a, b auditEntry) int { return a.Time.Compare(b.Time) })
	return out
}

// changes keeps the entries that change something: SSH commands and SFTP
// sessions, and `set server` on HAProxy (not `show stat`).
func changes(es []auditEntry) []auditEntry {
	var out []auditEntry
	for _, e := range es {
		if e.Where == "lb" && !strings.HasPrefix(e.Command, "set server") {
			continue
		}
		if e.Where == "lb" && strings.HasSuffix(strings.TrimSpace(e.Command), " state") {
			continue // the preflight's admin probe changes nothing
		}
		out = append(out, e)
	}
	return out
}

// noReinstallAfterDone checks, from the hosts' and HAProxy's records, that
// no host was installed with version again once it was put back in
// rotation on it.
func (c *cluster) noReinstallAfterDone(es []auditEntry, since time.Time, version string) {
	c.t.Helper()
	install := func(e auditEntry) bool {
		return e.Where != "lb" && strings.Contains(e.Command, "sha256sum") && strings.Contains(e.Command, "."+version+".tmp")
	}
	for _, h := range c.lab.HostNames() {
		var firstInstall, ready time.Time
		for _, e := range es {
			if e.Time.Before(since) {
				continue
			}
			switch {
			case e.Where == h && install(e):
				if !ready.IsZero() {
					c.t.Errorf("%s: installed %s again at %s after it was back in rotation at %s",
						h, version, e.Time.Format("15:04:05.000"), ready.Format("15:04:05.000"))
				}
				if firstInstall.IsZero() {
					firstInstall = e.Time
				}
			case e.Where == "lb" && !firstInstall.IsZero() && ready.IsZero() &&
				strings.HasPrefix(e.Command, "set server web/"+h+" state ready"):
				ready = e.Time
			}
		}
		if firstInstall.IsZero() {
			c.t.Errorf("%s: no install of %s in its audit log", h, version)
		}
	}
}

// stageEvents counts the rollout's stage events the watching CLI printed.
func stageEvents(d *drover) int {
	n := 0
	for _, ev := range d.stdout.all() {
		if ev.Kind == orchestrator.EventStage {
			n++
		}
	}
	return n
}

// TestCluster is an operator's day with a three-node cluster: deploys that
// survive the leader being killed, cut off, or every server stopping, a
// follower taking a deploy, refused credentials, and a broken release.
func TestCluster(t *testing.T) {
	c := newCluster(t, 6)
	// Coordinators reach HAProxy's runtime API over TCP, through the lab's
	// audited admin endpoint; a short stability watch per host leaves time
	// to strike mid-batch.
	slow := func(p *lab.PlanParams) { p.HAProxyTCP, p.MinHealthyTime = true, 200*time.Millisecond }
	plan := func(version string, broken bool) string { return c.plan(version, broken, "2", slow) }
	if code, d := c.runWith(c.env(), "deploy", plan("v1", false)); code != 0 {
		t.Fatalf("deploy v1 on the cluster: exit %d\n%s", code, d.stdout.text())
	}
	c.expectAllOn("v1")

	t.Run("leader killed at random moments", func(t *testing.T) {
		c.t = t
		seed := int64(20261128)
		if s := os.Getenv("DROVER_E2E_SEED"); s != "" {
			seed, _ = strconv.ParseInt(s, 10, 64)
		}
		rng := rand.New(rand.NewSource(seed))
		t.Logf("seed %d (set DROVER_E2E_SEED to replay)", seed)
		var failovers []time.Duration
		for i := range 10 {
			version := fmt.Sprintf("k%d", i)
			p := plan(version, false)
			// 6 hosts, 4 recorded stages each: kill at the k-th one.
			k := 1 + rng.Intn(22)
			var killed string
			var tKill time.Time
			c.underLoad(2, func() {
				d := c.startWith(c.env(), "deploy", p)
				d.stdout.waitFor(t, fmt.Sprintf("stage event %d", k), func(ev orchestrator.Event) bool {
					return ev.Kind == orchestrator.EventStage && stageEvents(d) >= k
				})
				killed = c.waitLeader(c.nodes)
				tKill = time.Now()
				if err := c.Procs[killed].Kill(); err != nil {
					t.Fatalf("kill -9 %s: %v", killed, err)
				}
				if code := d.wait(t); code != 0 {
					t.Fatalf("run %d: deploy %s with the leader killed: exit %d\n%s\n%s", i, version, code, d.stdout.text(), d.stderr.String())
				}
				c.startServer(killed, false)
			})
			c.expectAllOn(version)
			es := c.audit()
			c.noReinstallAfterDone(es, tKill.Add(-time.Minute), version)
			// Failover: from the kill to the new leader's first action on
			// a host or the balancer, as the host or HAProxy recorded it.
			failover := c.firstActionAfter(es, tKill, killed)
			if failover >= 0 {
				failovers = append(failovers, failover)
			}
			if failover < 0 {
				t.Fatalf("run %d: no host or HAProxy change by another coordinator after the kill", i)
			}
			elected := c.electedAfter(killed, tKill)
			t.Logf("run %d: killed leader %s at stage event %d; new leader after %v, its first host action after %v",
				i, killed, k, elected, failover)
			report(t, fmt.Sprintf("%d\t%s\t%d\t%.1f\t%.1f\n", i, killed, k, float64(failover.Microseconds())/1000, float64(elected.Microseconds())/1000))
			c.waitMembers(3)
		}
		slices.Sort(failovers)
		t.Logf("failover (kill -9 of the leader to the new leader's first host action), %d runs: median %v, max %v",
			len(failovers), failovers[len(failovers)/2], failovers[len(failovers)-1])
		if len(failovers) != 10 {
			t.Errorf("measured %d failovers, want 10", len(failovers))
		}
	})

	t.Run("leader cut off from its peers", func(t *testing.T) {
		c.t = t
		var old string
		var tElected time.Time
		c.underLoad(2, func() {
			d := c.startWith(c.env(), "deploy", plan("p1", false))
			d.stdout.waitFor(t, "the second batch", func(ev orchestrator.Event) bool {
				return ev.Kind == orchestrator.EventBatch && ev.Batch == 2
			})
			old = c.waitLeader(c.nodes)
			// Cut Raft and API traffic between the leader and the other
			// coordinators only: it still reaches every host and HAProxy,
			// so only fencing keeps it from acting.
			var peers []string
			for _, n := range c.others(old) {
				peers = append(peers, n.Name)
			}
			if err := c.lab.Isolate(context.Background(), old, peers...); err != nil {
				t.Fatal(err)
			}
			c.waitLeader(c.others(old))
			tElected = time.Now()
			if code := d.wait(t); code != 0 {
				t.Fatalf("deploy with the leader cut off: exit %d\n%s\n%s", code, d.stdout.text(), d.stderr.String())
			}
			if c.Procs[old].Exited() {
				t.Fatalf("the old leader %s exited: the test needs it alive and cut off", old)
			}
			time.Sleep(time.Second) // the old leader keeps running, cut off
			if err := c.lab.Heal(context.Background(), old); err != nil {
				t.Fatal(err)
			}
		})
		c.expectAllOn("p1")
		c.waitMembers(3)
		time.Sleep(time.Second) // the old leader is back among its peers
		oldIP := c.node(old).Address
		var last time.Time
		for _, e := range changes(c.audit()) {
			if e.From != oldIP {
				continue
			}
			last = e.Time
			if e.Time.After(tElected) {
				t.Errorf("the old leader %s changed %s after a new leader was elected (%s): %q at %s",
					old, e.Where, tElected.Format("15:04:05.000"), e.Command, e.Time.Format("15:04:05.000"))
			}
		}
		t.Logf("old leader %s: last change on a host or HAProxy %v before the new leader was seen", old, tElected.Sub(last))
	})

	t.Run("all servers stopped and started again", func(t *testing.T) {
		c.t = t
		c.underLoad(2, func() {
			d := c.startWith(c.env(), "deploy", plan("s1", false))
			d.stdout.waitFor(t, "the second batch", func(ev orchestrator.Event) bool {
				return ev.Kind == orchestrator.EventBatch && ev.Batch == 2
			})
			for _, n := range c.nodes {
				c.Procs[n.Name].Signal(syscall.SIGTERM)
			}
			for _, n := range c.nodes {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				if err := c.Procs[n.Name].Wait(ctx); err != nil && ctx.Err() != nil {
					t.Fatalf("%s did not stop: %v", n.Name, err)
				}
				cancel()
			}
			for _, n := range c.nodes {
				c.startServer(n.Name, false)
			}
			if code := d.wait(t); code != 0 {
				t.Fatalf("deploy across a full restart: exit %d\n%s\n%s", code, d.stdout.text(), d.stderr.String())
			}
		})
		c.expectAllOn("s1")
		c.waitMembers(3)
	})

	t.Run("submitted to a follower", func(t *testing.T) {
		c.t = t
		leader := c.waitLeader(c.nodes)
		follower := c.others(leader)[0]
		code, d := c.runWith(c.env(follower), "deploy", plan("f1", false))
		if code != 0 {
			t.Fatalf("deploy through follower %s: exit %d\n%s", follower.Name, code, d.stdout.text())
		}
		c.expectAllOn("f1")
	})

	t.Run("refused credentials change nothing", func(t *testing.T) {
		c.t = t
		before := len(c.audit())
		history := c.cli(0, "history")
		readTok := c.newToken("token", "create", "viewer", "--role", "read")
		checkJSON(t, "token", []byte(c.cli(0, "token", "list")), true)
		p := plan("x1", false)
		cases := []struct {
			name string
			env  func([]string) []string
			want string
		}{
			{"no client certificate", func(env []string) []string {
				return append(env, "DROVER_CLIENT_CERT=", "DROVER_CLIENT_KEY=")
			}, "certificate"},
			{"wrong token", func(env []string) []string { return append(env, "DROVER_TOKEN=drv_not-a-token") }, "invalid or expired API token"},
			{"read-only token", func(env []string) []string { return append(env, "DROVER_TOKEN="+readTok) }, "can only read"},
		}
		for _, tc := range cases {
			code, d := c.runWith(tc.env(c.env()), "deploy", p)
			if code != 2 || !strings.Contains(d.stderr.String(), tc.want) {
				t.Errorf("%s: exit %d, stderr %q; want exit 2 mentioning %q", tc.name, code, d.stderr.String(), tc.want)
			}
		}
		if after := c.cli(0, "history"); after != history {
			t.Errorf("history changed after refused requests:\nbefore:\n%s\nafter:\n%s", history, after)
		}
		if after := len(c.audit()); after != before {
			t.Errorf("hosts or HAProxy saw %d new commands after refused requests", after-before)
		}
		c.expectAllOn("f1")
	})

	t.Run("a follower never lends its server identity", func(t *testing.T) { c.t = t; c.probeForwardedIdentity(t) })

	t.Run("held hosts: refused, or waited for with --lock-wait", func(t *testing.T) {
		c.t = t
		// h1 holds its hosts until the test opens the gate: its first
		// hosts wait in a before_drain hook (still in rotation), however
		// fast the rest of a deploy is.
		gate := filepath.Join(c.lab.Dir, "gate-h1")
		held := func(p *lab.PlanParams) {
			p.Extra = fmt.Sprintf("hooks:\n  before_drain: [\"while [ ! -e %s ]; do sleep 0.05; done\"]", gate)
		}
		detached := c.cli(0, "deploy", c.plan("h1", false, "2", slow, held), "--detach")
		checkJSON(t, "deployment", []byte(detached), false)
		var rec struct{ ID string }
		if err := json.Unmarshal([]byte(detached), &rec); err != nil || rec.ID == "" {
			t.Fatalf("deploy --detach -o json: %v\n%s", err, detached)
		}
		first := rec.ID
		other := c.plan("h2", false, "2", slow, func(p *lab.PlanParams) { p.Name = "web-canary" })
		code, d := c.runWith(c.env(), "deploy", other)
		if code != 2 || !strings.Contains(d.stderr.String(), first) {
			t.Fatalf("deploy over held hosts: exit %d, stderr %q; want exit 2 naming %s", code, d.stderr.String(), first)
		}
		// Another terminal re-attaches to the detached deployment.
		watcher := c.startWith(c.env(), "status", first, "--watch")
		watcher.stdout.waitFor(t, "status --watch to show the detached deployment", func(ev orchestrator.Event) bool {
			return ev.Kind == orchestrator.EventStarted || ev.Kind == orchestrator.EventBatch || ev.Kind == orchestrator.EventStage
		})
		waiting := c.startWith(c.env(), "deploy", other, "--lock-wait", "2m")
		waiting.stdout.waitFor(t, "the deploy waiting for the held hosts", func(ev orchestrator.Event) bool {
			return ev.Kind == "note" && strings.Contains(ev.Message, "waiting up to")
		})
		c.cli(0, "abort", first)
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		watcher.wait(t)
		if !slices.ContainsFunc(watcher.stdout.all(), func(ev orchestrator.Event) bool {
			return ev.Kind == orchestrator.EventFinished && ev.State == deploy.StateAborted
		}) {
			t.Errorf("status --watch did not follow %s to its end:\n%s\n%s", first, watcher.stdout.text(), watcher.stderr.String())
		}
		if code := waiting.wait(t); code != 0 {
			t.Fatalf("deploy with --lock-wait after the holder was aborted: exit %d\n%s\n%s", code, waiting.stdout.text(), waiting.stderr.String())
		}
		if out := c.cli(0, "status", first); !strings.Contains(out, string(deploy.StateAborted)) {
			t.Errorf("the first deployment is not aborted:\n%s", out)
		}
		c.expectAllOn("h2")
	})

	t.Run("broken release rolls back", func(t *testing.T) {
		c.t = t
		c.underLoad(2, func() {
			code, d := c.runWith(c.env(), "deploy", plan("b1", true))
			if code != 3 {
				t.Fatalf("broken release on the cluster: exit %d, want 3\n%s", code, d.stdout.text())
			}
		})
		c.expectAllOn("h2")
		out := c.cli(0, "status")
		if !strings.Contains(out, string(deploy.StateRolledBack)) {
			t.Errorf("status does not say rolled back:\n%s", out)
		}
	})
}

// firstActionAfter is the time from t to the first change a coordinator
// other than old made on a host or the balancer, as the host or HAProxy
// recorded it (-1 when none did).
func (c *cluster) firstActionAfter(es []auditEntry, t time.Time, old string) time.Duration {
	oldIP := c.node(old).Address
	for _, e := range changes(es) {
		if e.Time.After(t) && e.From != oldIP && slices.ContainsFunc(c.nodes, func(n lab.Coordinator) bool { return n.Address == e.From }) {
			return e.Time.Sub(t)
		}
	}
	return -1
}

// electedAfter reads the other coordinators' logs for the first time one
// of them took the lead after t, and returns how long after t that was
// (-1 when none says so).
func (c *cluster) electedAfter(killed string, t time.Time) time.Duration {
	best := time.Duration(-1)
	for _, n := range c.nodes {
		if n.Name == killed {
			continue
		}
		b, err := os.ReadFile(c.Procs[n.Name].LogPath())
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, `msg="leadership changed" leader=true`) {
				continue
			}
			ts, _, _ := strings.Cut(strings.TrimPrefix(l, "time="), " ")
			at, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil || !at.After(t) {
				continue
			}
			if d := at.Sub(t); best < 0 || d < best {
				best = d
			}
		}
	}
	return best
}

// report appends a line to $DROVER_BENCH_REPORT, read by
// bench/failover.sh and bench/agent.sh to print their tables.
func report(t *testing.T, line string) {
	path := os.Getenv("DROVER_BENCH_REPORT")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
}
