package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
)

// watchLag bounds how long after the deployment's recorded end the watching
// CLI may exit. It is a correctness bound (the CLI followed the new leader
// instead of waiting on a silent stream), generous for a loaded machine.
const watchLag = time.Second

// moment is a point of a rollout, as the watching CLI shows it: the event
// of host entering stage.
type moment struct {
	host  string
	stage deploy.Stage
}

func (m moment) String() string { return m.host + " " + string(m.stage) }

// watchMoments returns n seeded moments of a rollout of hosts in batches of
// two: the first batch's second host activating (the moment of issue 15)
// `key` times, then every (host, stage) in a seeded order while there is
// room.
func watchMoments(rng *rand.Rand, hosts []string, n, key int) []moment {
	stages := []deploy.Stage{deploy.StageDrain, deploy.StageInstall, deploy.StageActivate, deploy.StageEnable}
	var all []moment
	for _, h := range hosts {
		for _, s := range stages {
			all = append(all, moment{h, s})
		}
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	var out []moment
	for range key {
		out = append(out, moment{hosts[1], deploy.StageActivate})
	}
	for i := 0; len(out) < n; i++ {
		out = append(out, all[i%len(all)])
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:n]
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a count", name, v)
	}
	return n
}

// TestWatchThroughFailover is an operator watching `drover deploy --server`
// while the leader is killed (kill -9), killed and started again at once,
// or its link silently cut (packets dropped, no RST), at seeded moments of
// the rollout: every time the CLI shows each event once and in order, and
// exits within watchLag of the deployment's recorded end (from the
// coordinators' own logs).
// DROVER_WATCH_KILLS, DROVER_WATCH_RESTARTS and DROVER_WATCH_CUTS set how
// many runs of each (default 20, 4 and 4; bench/watch.sh runs more),
// DROVER_E2E_SEED the moments.
func TestWatchThroughFailover(t *testing.T) {
	c := newCluster(t, 4)
	plan := func(version string) string {
		return c.plan(version, false, "2", func(p *lab.PlanParams) { p.HAProxyTCP = true })
	}
	if code, d := c.runWith(c.env(), "deploy", plan("v1")); code != 0 {
		t.Fatalf("deploy v1 on the cluster: exit %d\n%s", code, d.stdout.text())
	}
	seed := int64(20261129)
	if s := os.Getenv("DROVER_E2E_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d (set DROVER_E2E_SEED to replay)", seed)
	hosts := c.lab.HostNames()

	kill := func(t *testing.T, leader string) func() {
		if err := c.Procs[leader].Kill(); err != nil {
			t.Fatalf("kill -9 %s: %v", leader, err)
		}
		return func() { c.startServer(leader, false) }
	}
	// Killed and started again at once, as a supervisor would: its state
	// is behind the cluster's until it catches up, while its peers may
	// still forward to it.
	restart := func(t *testing.T, leader string) func() {
		if err := c.Procs[leader].Kill(); err != nil {
			t.Fatalf("kill -9 %s: %v", leader, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Procs[leader].Wait(ctx); ctx.Err() != nil {
			t.Fatalf("%s did not die: %v", leader, err)
		}
		c.startServer(leader, false)
		return func() {}
	}
	// A cut leader is still running; it loses every path: to its peers, the
	// operator, the balancer and the hosts.
	cut := func(t *testing.T, leader string) func() {
		var from []string
		for _, n := range c.others(leader) {
			from = append(from, n.Name)
		}
		from = append(append(from, "ctl", "lb"), hosts...)
		if err := c.lab.Isolate(context.Background(), leader, from...); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := c.lab.Heal(context.Background(), leader); err != nil {
				t.Fatal(err)
			}
		}
	}

	var runs []watchRun
	for _, k := range []struct {
		name   string
		n      int
		strike func(*testing.T, string) func()
	}{
		{"kill", envInt(t, "DROVER_WATCH_KILLS", 20), kill},
		{"restart", envInt(t, "DROVER_WATCH_RESTARTS", 4), restart},
		{"cut", envInt(t, "DROVER_WATCH_CUTS", 4), cut},
	} {
		for i, m := range watchMoments(rng, hosts, k.n, min(4, k.n/4)) {
			name := fmt.Sprintf("%s %d at %s", k.name, i, m)
			t.Run(name, func(t *testing.T) {
				c.t = t
				// Odd runs: the CLI's first address is the leader's, so
				// that its stream goes to the struck node itself.
				r := c.watchDuring(t, plan(fmt.Sprintf("%s%d", k.name[:1], i)), m, i%2 == 1, k.strike)
				r.kind = k.name
				t.Logf("%s: deployment end -> CLI exit %v; %s -> next host action %v", name, r.lag, k.name, r.failover)
				report(t, fmt.Sprintf("%s\t%d\t%s\t%.1f\t%.1f\n", k.name, i, m, ms(r.lag), ms(r.failover)))
				runs = append(runs, r)
			})
		}
	}
	for _, kind := range []string{"kill", "restart", "cut"} {
		var lags []time.Duration
		for _, r := range runs {
			if r.kind == kind {
				lags = append(lags, r.lag)
			}
		}
		if len(lags) > 0 {
			slices.Sort(lags)
			t.Logf("%s: %d runs, deployment end -> CLI exit: median %v, max %v", kind, len(lags), lags[len(lags)/2], lags[len(lags)-1])
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// watchRun is what one run measured.
type watchRun struct {
	kind     string
	lag      time.Duration // deployment's recorded end -> CLI exit
	failover time.Duration // strike -> next host or balancer action
}

// watchDuring deploys plan with a watching CLI (given the leader's address
// first when leaderFirst, else last), strikes the leader when the CLI
// shows moment m, and checks what the CLI showed and when it ended. strike
// returns what undoes it, run once the CLI has exited.
func (c *cluster) watchDuring(t *testing.T, plan string, m moment, leaderFirst bool, strike func(*testing.T, string) func()) watchRun {
	t.Helper()
	leader := c.waitLeader(c.nodes)
	addrs := append(c.others(leader), c.node(leader))
	if leaderFirst {
		addrs = append([]lab.Coordinator{c.node(leader)}, c.others(leader)...)
	}
	d := c.startWith(c.env(addrs...), "deploy", plan)
	d.stdout.waitFor(t, m.String(), func(ev orchestrator.Event) bool {
		return ev.Kind == orchestrator.EventStage && ev.Host == m.host && ev.Stage == m.stage
	})
	struck := time.Now()
	undo := strike(t, leader)
	code := d.wait(t)
	undo()
	if code != 0 {
		t.Fatalf("deploy with the leader struck at %s: exit %d\n%s\n%s", m, code, d.stdout.text(), d.stderr.String())
	}
	evs := d.stdout.all()
	var id string
	for _, ev := range evs {
		if id = ev.Deployment; id != "" {
			break
		}
	}
	end, ok := c.loggedAt("finished", id)
	if !ok {
		t.Fatalf("no coordinator logged the end of %s", id)
	}
	// The failover figure counts the other coordinators' actions only: a
	// restarted leader may lead again, but its actions just after the
	// strike may also be its last ones before it.
	r := watchRun{lag: d.exited.Sub(end), failover: c.firstActionAfter(c.audit(), struck, leader)}
	if r.lag > watchLag {
		t.Errorf("the CLI exited %v after the deployment's recorded end (%s), want <= %v\n%s\n%s",
			r.lag, end.Format("15:04:05.000"), watchLag, d.stdout.text(), d.stderr.String())
	}
	checkShown(t, evs)
	c.waitMembers(3)
	return r
}

// stageOrder ranks a host's recorded stages.
var stageOrder = map[deploy.Stage]int{
	deploy.StageDrain: 1, deploy.StageInstall: 2, deploy.StageActivate: 3, deploy.StageEnable: 4,
}

// checkShown checks what a watching CLI showed: each host's stages in
// pipeline order, a stage shown again only as a re-run by the new leader,
// each host done once after its stages, and the end once, last.
func checkShown(t *testing.T, evs []orchestrator.Event) {
	t.Helper()
	reached := map[string]int{} // host -> furthest stage shown
	done := map[string]bool{}
	finished := 0
	for _, ev := range evs {
		if ev.Kind == "note" {
			continue
		}
		if finished > 0 {
			t.Errorf("%s %s %s shown after the end", ev.Kind, ev.Host, ev.Stage)
		}
		switch ev.Kind {
		case orchestrator.EventFinished:
			finished++
		case orchestrator.EventStage:
			r := stageOrder[ev.Stage]
			switch {
			case done[ev.Host]:
				t.Errorf("%s %s shown after the host was done", ev.Host, ev.Stage)
			case r <= reached[ev.Host] && ev.Message != "re-run by the new leader":
				t.Errorf("%s %s shown again (or out of order) without saying the new leader re-ran it: %+v", ev.Host, ev.Stage, ev)
			}
			reached[ev.Host] = max(reached[ev.Host], r)
		case orchestrator.EventHostDone:
			if done[ev.Host] || reached[ev.Host] != stageOrder[deploy.StageEnable] {
				t.Errorf("%s done shown twice or before it was enabled", ev.Host)
			}
			done[ev.Host] = true
		}
	}
	if finished != 1 {
		t.Errorf("the CLI showed %d ends, want 1", finished)
	}
}

// loggedAt returns when a coordinator logged msg about deployment id.
func (c *cluster) loggedAt(msg, id string) (time.Time, bool) {
	for _, n := range c.nodes {
		b, err := os.ReadFile(c.Procs[n.Name].LogPath())
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, " msg="+msg+" ") || !strings.Contains(l, " deployment="+id) {
				continue
			}
			ts, _, _ := strings.Cut(strings.TrimPrefix(l, "time="), " ")
			if at, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				return at, true
			}
		}
	}
	return time.Time{}, false
}
