package orchestrator

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/health"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/raftstore"
)

// fleet is a fake world: hosts that understand the engine's scripts just
// well enough, and a balancer that counts who is out of rotation.
type fleet struct {
	mu         sync.Mutex
	hosts      map[string]*fakeHost
	broken     map[string]bool // versions whose health check fails
	out        map[string]bool // lb servers out of rotation
	maxOut     int
	lbLog      []string
	dialFail   map[string]error
	checkFail  error                     // what the balancer's preflight check says of every server
	checkBy    func(server string) error // when set, what it says of each
	drainDelay time.Duration
	// onStage, when set, is called at each host stage (to inject failures).
	onStage func(host string, st deploy.Stage, ph deploy.Phase)
	// onFinished, when set, is called when a deployment finishes.
	onFinished func()
	// fleetWork, when set, is how long a dial, a preflight and a prune
	// take; busy and maxBusy count those in progress, now and at most.
	fleetWork     time.Duration
	busy, maxBusy int
	dials, closes map[string]int
	closedAt      map[string]int // len(lbLog) when the host was last closed
}

type fakeHost struct {
	f         *fleet
	name      string
	installed map[string]bool
	current   string
	running   string
	uploads   int
	dead      bool
	cmds      []string
}

func newFleet(names ...string) *fleet {
	f := &fleet{hosts: map[string]*fakeHost{}, broken: map[string]bool{}, out: map[string]bool{}, dialFail: map[string]error{},
		drainDelay: 2 * time.Millisecond, dials: map[string]int{}, closes: map[string]int{}, closedAt: map[string]int{}}
	for _, n := range names {
		f.hosts[n] = &fakeHost{f: f, name: n, installed: map[string]bool{}}
	}
	return f
}

func (f *fleet) Connect(ctx context.Context, h plans.Host) (Host, error) {
	f.work()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.dialFail[h.Name]; err != nil {
		return nil, err
	}
	f.dials[h.Name]++
	return f.hosts[h.Name], nil
}

// work lasts fleetWork, counted in busy: the fleet-wide steps (dial,
// preflight, prune) that the engine must bound.
func (f *fleet) work() {
	f.mu.Lock()
	d := f.fleetWork
	if d > 0 {
		f.busy++
		f.maxBusy = max(f.maxBusy, f.busy)
	}
	f.mu.Unlock()
	if d == 0 {
		return
	}
	time.Sleep(d) // the work itself, not a wait for a condition
	f.mu.Lock()
	f.busy--
	f.mu.Unlock()
}

var (
	reTest    = regexp.MustCompile(`test -f /srv/app/releases/([^/]+)/\.drover-release`)
	reMove    = regexp.MustCompile(`mv /srv/app/releases/\.[^ ]+\.tmp /srv/app/releases/(\S+)`)
	reLink    = regexp.MustCompile(`ln -sfn releases/(\S+) `)
	errRemote = errors.New("remote command failed")
)

func (h *fakeHost) Run(ctx context.Context, cmd string, out io.Writer) error {
	if strings.Contains(cmd, "df -Pk") || strings.Contains(cmd, "ls -1t") {
		h.f.work()
	}
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	if h.dead {
		return errors.New("connection lost")
	}
	h.cmds = append(h.cmds, cmd)
	switch {
	case strings.Contains(cmd, "df -Pk"):
		fmt.Fprintf(out, "current=/srv/app/releases/%s\nfree=1000000\n", h.current)
		for _, v := range slices.Sorted(maps.Keys(h.installed)) {
			fmt.Fprintf(out, "release=%s\n", v)
		}
	case reTest.MatchString(cmd):
		if h.installed[reTest.FindStringSubmatch(cmd)[1]] {
			fmt.Fprintln(out, "present")
		} else {
			fmt.Fprintln(out, "absent")
		}
	case reMove.MatchString(cmd):
		h.installed[reMove.FindStringSubmatch(cmd)[1]] = true
	case reLink.MatchString(cmd):
		h.current = reLink.FindStringSubmatch(cmd)[1]
		if strings.Contains(cmd, "exit 7") { // a plan whose restart is broken
			return fmt.Errorf("exit 7: %w", errRemote)
		}
		if strings.Contains(cmd, "restart") {
			h.running = h.current
		}
	case strings.Contains(cmd, "exit 7"):
		fmt.Fprintln(out, "hook said no")
		return fmt.Errorf("exit 7: %w", errRemote)
	}
	return nil
}

func (h *fakeHost) Put(ctx context.Context, path string, r io.Reader, mode fs.FileMode) error {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	if h.dead {
		return errors.New("connection lost")
	}
	h.uploads++
	_, err := io.Copy(io.Discard, r)
	return err
}

func (h *fakeHost) Close() error {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	h.f.closes[h.name]++
	h.f.closedAt[h.name] = len(h.f.lbLog)
	return nil
}

func (f *fleet) Drain(ctx context.Context, server string) error {
	f.mu.Lock()
	f.out[server] = true
	f.lbLog = append(f.lbLog, "drain "+server)
	f.maxOut = max(f.maxOut, len(f.out))
	f.mu.Unlock()
	// Let the other hosts of a batch overlap, as they do for real.
	time.Sleep(f.drainDelay)
	return nil
}

func (f *fleet) Enable(ctx context.Context, server string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.out, server)
	f.lbLog = append(f.lbLog, "enable "+server)
	return nil
}

func (f *fleet) Check(ctx context.Context, server string) error {
	if f.checkBy != nil {
		return f.checkBy(server)
	}
	return f.checkFail
}

// State: a drained server is MAINT; one whose host runs nothing is DOWN.
func (f *fleet) State(ctx context.Context, server string) (LBStates, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return LBStates{f.stateLocked(server)}, nil
}

func (f *fleet) stateLocked(server string) LBState {
	st := LBState{Instance: "fake", Server: server, Admin: AdminReady, Status: "UP"}
	_, name, _ := strings.Cut(server, "/")
	if h := f.hosts[name]; h == nil || h.running == "" || h.running == "crashed" {
		st.Status = "DOWN"
	}
	if f.out[server] {
		st.Admin, st.Status = AdminMaint, "MAINT"
	}
	st.InRotation = st.Admin == AdminReady && st.Status == "UP"
	return st
}

func (f *fleet) Backend(ctx context.Context, backend string) (LBStates, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out LBStates
	for _, n := range slices.Sorted(maps.Keys(f.hosts)) {
		out = append(out, f.stateLocked(backend+"/"+n))
	}
	return out, nil
}

type fakeCheck struct {
	h         *fakeHost
	version   string
	wrongPort bool // the plan's check probes a port nothing listens on
}

func (c fakeCheck) Check(ctx context.Context) error {
	if c.wrongPort {
		return fmt.Errorf("%s:9: connection refused", c.h.name)
	}
	c.h.f.mu.Lock()
	defer c.h.f.mu.Unlock()
	if c.h.running != c.version {
		return fmt.Errorf("%s runs %q, want %q", c.h.name, c.h.running, c.version)
	}
	if c.h.f.broken[c.version] || c.h.f.broken[c.h.name+"/"+c.version] {
		return fmt.Errorf("%s: status 500", c.h.name)
	}
	return nil
}

// harness is an engine on a real single-node store with a fake fleet.
type harness struct {
	t      testing.TB
	f      *fleet
	store  *raftstore.Store
	engine *Engine
	dir    string
	mu     sync.Mutex
	events []Event
}

func newHarness(t testing.TB, f *fleet) *harness {
	t.Helper()
	dir := t.TempDir()
	st, err := raftstore.OpenSingle(context.Background(), raftstore.Options{Dir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{t: t, f: f, store: st, dir: dir}
	h.engine = New(Deps{
		Store:     st,
		Connector: func(*plans.Plan) (Connector, error) { return f, nil },
		Balancer:  func(*plans.Plan) (Balancer, error) { return f, nil },
		Health: func(p *plans.Plan, ph plans.Host, version string, host Host) (health.Checker, health.Policy, error) {
			return fakeCheck{h: f.hosts[ph.Name], version: version, wrongPort: p.Health.TCP != nil && p.Health.TCP.Port == 9},
				health.Policy{Interval: time.Millisecond, Timeout: time.Second, Deadline: 30 * time.Millisecond, Threshold: 1}, nil
		},
		Events: func(ev Event) {
			h.mu.Lock()
			h.events = append(h.events, ev)
			h.mu.Unlock()
			if ev.Kind == EventStage && f.onStage != nil {
				f.onStage(ev.Host, ev.Stage, ev.Phase)
			}
			if ev.Kind == EventFinished && f.onFinished != nil {
				f.onFinished()
			}
		},
	})
	return h
}

// plan builds a plan for n hosts web1..webN with a real artifact file.
func (h *harness) plan(version string, batch plans.Size, maxFail int) *plans.Plan {
	h.t.Helper()
	art := filepath.Join(h.dir, version+".tar.gz")
	writeArtifact(h.t, art, version)
	p := &plans.Plan{
		Name: "web", Version: version,
		SSH:          plans.SSH{CommandTimeout: 5 * time.Second},
		LoadBalancer: plans.LoadBalancer{HAProxy: plans.HAProxies{{Socket: "/fake"}}},
		Strategy:     plans.Strategy{Batches: []plans.Size{batch}, MaxFailures: plans.Size{N: maxFail}},
		Release:      plans.Release{Artifact: art, Path: "/srv/app", Restart: "bin/restart", Keep: 3},
		Rollback:     plans.Rollback{Automatic: true},
	}
	names := make([]string, 0, len(h.f.hosts))
	for n := range h.f.hosts {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		p.Hosts = append(p.Hosts, plans.Host{Name: n, Address: n + ":22", LBServer: "web/" + n, Transport: plans.TransportSSH})
	}
	return p
}

func writeArtifact(t testing.TB, path, version string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	body := []byte(version + "\n")
	tw.WriteHeader(&tar.Header{Name: "VERSION", Mode: 0o644, Size: int64(len(body))})
	tw.Write(body)
	tw.Close()
	gz.Close()
	f.Close()
}

func (h *harness) deploy(p *plans.Plan, stop <-chan struct{}) (string, deploy.DeploymentState, error) {
	h.t.Helper()
	id, err := h.engine.Submit(context.Background(), p, SubmitOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	st, err := h.engine.Run(context.Background(), stop, id)
	return id, st, err
}

func (h *harness) mustDeploy(p *plans.Plan) {
	h.t.Helper()
	if _, st, err := h.deploy(p, nil); err != nil || st != deploy.StateSucceeded {
		h.t.Fatalf("deploy %s: state %s, err %v", p.Version, st, err)
	}
}

func (h *harness) running() map[string]string {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	out := map[string]string{}
	for n, fh := range h.f.hosts {
		out[n] = fh.running
	}
	return out
}

func hostsNamed(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("web%d", i))
	}
	return out
}

func allOn(t *testing.T, got map[string]string, version string) {
	t.Helper()
	for h, v := range got {
		if v != version {
			t.Errorf("%s runs %q, want %q (all: %v)", h, v, version, got)
		}
	}
}

func TestRolloutSucceedsBatchByBatch(t *testing.T) {
	f := newFleet(hostsNamed(6)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	h.mustDeploy(h.plan("v2", plans.Size{N: 2}, 0))
	allOn(t, h.running(), "v2")
	if f.maxOut > 2 {
		t.Errorf("max out of rotation = %d, want <= 2", f.maxOut)
	}
	if len(f.out) != 0 {
		t.Errorf("left out of rotation: %v", f.out)
	}
	for _, n := range hostsNamed(6) {
		if r := h.store.HostRecord(n); r.Current != "v2" || r.Previous != "v1" || r.Lock != "" {
			t.Errorf("%s record = %+v", n, r)
		}
	}
	// Batches run in order: web1/web2 are enabled before web3 is drained.
	first := slices.Index(f.lbLog, "drain web/web3")
	for _, s := range []string{"enable web/web1", "enable web/web2"} {
		if i := slices.Index(f.lbLog, s); i < 0 || i > first {
			t.Errorf("%q at %d, drain web3 at %d: batches overlap: %v", s, i, first, f.lbLog)
		}
	}
}

func TestBrokenReleaseRollsBackEveryTouchedHost(t *testing.T) {
	f := newFleet(hostsNamed(6)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	h.mustDeploy(h.plan("v2", plans.Size{N: 2}, 0))
	f.maxOut = 0
	// v3 works on the first batch and fails on the second.
	f.broken["web3/v3"], f.broken["web4/v3"] = true, true
	f.lbLog = nil
	id, st, err := h.deploy(h.plan("v3", plans.Size{N: 2}, 0), nil)
	if err != nil || st != deploy.StateRolledBack {
		t.Fatalf("state %s, err %v", st, err)
	}
	allOn(t, h.running(), "v2")
	if f.maxOut > 2 {
		t.Errorf("max out of rotation = %d, want <= 2", f.maxOut)
	}
	if len(f.out) != 0 {
		t.Errorf("left out of rotation: %v", f.out)
	}
	d, _ := h.store.Deployment(id)
	for _, n := range []string{"web5", "web6"} {
		if d.Hosts[n].Touched {
			t.Errorf("%s was touched after the failing batch", n)
		}
	}
	if got := failedHosts(d); !slices.Equal(got, []string{"web3", "web4"}) {
		t.Errorf("failed hosts = %v", got)
	}
	for _, n := range hostsNamed(6) {
		if r := h.store.HostRecord(n); r.Current != "v2" || r.Previous != "v1" {
			t.Errorf("%s record after rollback = %+v", n, r)
		}
	}
	// Newest batch first: web3/web4 are back in rotation before web1 leaves again.
	lastIndex := func(entry string) int {
		i := len(f.lbLog) - 1
		for ; i >= 0 && f.lbLog[i] != entry; i-- {
		}
		return i
	}
	if a, b := lastIndex("enable web/web3"), lastIndex("drain web/web1"); a < 0 || b < a {
		t.Errorf("rollback order: enable web3 at %d, drain web1 at %d: %v", a, b, f.lbLog)
	}
	// The rollback reused the release on disk: no upload of v2 again.
	if f.hosts["web1"].uploads != 3 {
		t.Errorf("web1 uploads = %d, want 3 (v1, v2, v3)", f.hosts["web1"].uploads)
	}
}

func TestFailureBudget(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 1}, 0))
	p := h.plan("v2", plans.Size{N: 1}, 1)
	// web2's restart "works" but its app is replaced by a crash before verify.
	f.onStage = func(host string, st deploy.Stage, ph deploy.Phase) {
		if host == "web2" && st == deploy.StageVerify && ph == deploy.PhaseRollout {
			f.mu.Lock()
			f.hosts["web2"].running = "crashed"
			f.mu.Unlock()
		}
	}
	id, st, err := h.deploy(p, nil)
	if err != nil || st != deploy.StateSucceeded {
		t.Fatalf("within budget: state %s, err %v", st, err)
	}
	got := h.running()
	if got["web2"] != "v1" || got["web1"] != "v2" || got["web4"] != "v2" {
		t.Errorf("running = %v; want web2 rolled back to v1, others on v2", got)
	}
	d, _ := h.store.Deployment(id)
	if hp := d.Hosts["web2"]; !hp.RolloutFailed || hp.Phase != deploy.PhaseRollback || hp.Stage != deploy.StageDone {
		t.Errorf("web2 progress = %+v", hp)
	}
}

func TestFirstDeployFailureLeavesHostDrained(t *testing.T) {
	f := newFleet(hostsNamed(2)...)
	f.broken["v1"] = true
	h := newHarness(t, f)
	id, st, err := h.deploy(h.plan("v1", plans.Size{N: 1}, 0), nil)
	if err != nil || st != deploy.StateFailed {
		t.Fatalf("state %s, err %v", st, err)
	}
	d, _ := h.store.Deployment(id)
	if !strings.Contains(d.Error, "rollback failed on web1") {
		t.Errorf("error = %q", d.Error)
	}
	if !f.out["web/web1"] {
		t.Errorf("web1 should stay drained, lb = %v", f.out)
	}
	if d.Hosts["web2"].Touched {
		t.Errorf("web2 was touched")
	}
}

func TestPreflightFailureTouchesNothing(t *testing.T) {
	f := newFleet(hostsNamed(3)...)
	f.dialFail["web3"] = errors.New("host key unknown")
	h := newHarness(t, f)
	id, st, err := h.deploy(h.plan("v1", plans.Size{N: 1}, 0), nil)
	if !errors.Is(err, ErrPreflight) || st != deploy.StateFailed {
		t.Fatalf("state %s, err %v", st, err)
	}
	if !strings.Contains(err.Error(), "web3") {
		t.Errorf("error does not name the host: %v", err)
	}
	if len(f.lbLog) != 0 {
		t.Errorf("balancer touched: %v", f.lbLog)
	}
	d, _ := h.store.Deployment(id)
	if d.Touched() {
		t.Errorf("a host was recorded as touched")
	}
	if r := h.store.HostRecord("web1"); r.Lock != "" {
		t.Errorf("lock not released: %+v", r)
	}
}

func TestPauseThenResume(t *testing.T) {
	f := newFleet(hostsNamed(6)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	stop := make(chan struct{})
	var once sync.Once
	f.onStage = func(host string, st deploy.Stage, ph deploy.Phase) {
		if host == "web3" && st == deploy.StageVerify {
			once.Do(func() { close(stop) })
		}
	}
	id, st, err := h.deploy(h.plan("v2", plans.Size{N: 2}, 0), stop)
	if err != nil || st != deploy.StatePaused {
		t.Fatalf("state %s, err %v", st, err)
	}
	got := h.running()
	// Hosts in flight finished; the next batch did not start.
	for n, want := range map[string]string{"web1": "v2", "web3": "v2", "web4": "v2", "web5": "v1", "web6": "v1"} {
		if got[n] != want {
			t.Errorf("%s runs %s while paused, want %s", n, got[n], want)
		}
	}
	if len(f.out) != 0 {
		t.Errorf("hosts out of rotation while paused: %v", f.out)
	}
	f.onStage = nil
	before := len(f.hosts["web1"].cmds)
	st, err = h.engine.Run(context.Background(), nil, id)
	if err != nil || st != deploy.StateSucceeded {
		t.Fatalf("resume: state %s, err %v", st, err)
	}
	allOn(t, h.running(), "v2")
	if n := len(f.hosts["web1"].cmds); n != before+1 { // only the final prune
		t.Errorf("web1 got %d commands on resume, want only the prune", n-before)
	}
}

func TestResumeRerunsInterruptedStage(t *testing.T) {
	f := newFleet(hostsNamed(2)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	// The coordinator "dies" during web1's verify: cancel the context there.
	ctx, cancel := context.WithCancel(context.Background())
	f.onStage = func(host string, st deploy.Stage, ph deploy.Phase) {
		if host == "web1" && st == deploy.StageVerify {
			cancel()
		}
	}
	id, err := h.engine.Submit(ctx, h.plan("v2", plans.Size{N: 2}, 0), SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.engine.Run(ctx, nil, id); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	d, _ := h.store.Deployment(id)
	if d.State != deploy.StateRunning || d.Hosts["web1"].Stage.Settled() {
		t.Fatalf("after crash: %s, web1 %s", d.State, d.Hosts["web1"].Stage)
	}
	f.onStage = nil
	uploads := f.hosts["web1"].uploads
	st, err := h.engine.Run(context.Background(), nil, id)
	if err != nil || st != deploy.StateSucceeded {
		t.Fatalf("resume: state %s, err %v", st, err)
	}
	allOn(t, h.running(), "v2")
	if f.hosts["web1"].uploads != uploads {
		t.Errorf("web1 was uploaded to again after it had installed")
	}
}

func TestOperatorRollback(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	id, _, _ := h.deploy(h.plan("v2", plans.Size{N: 2}, 0), nil)
	rid, err := h.engine.SubmitRollback(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.engine.Run(context.Background(), nil, rid)
	if err != nil || st != deploy.StateSucceeded {
		t.Fatalf("rollback: state %s, err %v", st, err)
	}
	allOn(t, h.running(), "v1")
	// Rolling back the same deployment again finds nothing to do.
	if _, err := h.engine.SubmitRollback(context.Background(), id, ""); !errors.Is(err, ErrNothingToRollBack) {
		t.Errorf("second rollback: %v", err)
	}
}

// rollback --to takes every host to any release it still keeps; a
// release that a host does not keep is refused in preflight, listing what
// every host keeps, with nothing touched.
func TestOperatorRollbackTo(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	h.mustDeploy(h.plan("v2", plans.Size{N: 2}, 0))
	id, _, _ := h.deploy(h.plan("v3", plans.Size{N: 2}, 0), nil)
	delete(f.hosts["web3"].installed, "v2") // pruned by hand

	bad, err := h.engine.SubmitRollback(context.Background(), id, "v2")
	if err != nil {
		t.Fatal(err)
	}
	cmds := len(f.hosts["web1"].cmds)
	st, err := h.engine.Run(context.Background(), nil, bad)
	if st != deploy.StateFailed || !errors.Is(err, ErrPreflight) || !errors.Is(err, ErrReleaseNotKept) ||
		!strings.Contains(err.Error(), "rollback to v2: web3: release not kept on the host (pruned by release.keep, or removed); releases kept on every host: v1, v3") {
		t.Fatalf("rollback to a release web3 does not keep: state %s, err %v", st, err)
	}
	if got := f.hosts["web1"].cmds[cmds:]; len(got) != 1 || !strings.Contains(got[0], "df -Pk") {
		t.Errorf("a refused rollback ran more than its preflight: %q", got)
	}
	allOn(t, h.running(), "v3")

	rid, err := h.engine.SubmitRollback(context.Background(), id, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := h.engine.Run(context.Background(), nil, rid); err != nil || st != deploy.StateSucceeded {
		t.Fatalf("rollback --to v1: state %s, err %v", st, err)
	}
	allOn(t, h.running(), "v1")
	if _, err := h.engine.SubmitRollback(context.Background(), id, "v1"); !errors.Is(err, ErrNothingToRollBack) {
		t.Errorf("a rollback to the release every host runs: %v", err)
	}
}

func TestDeployOfLockedHostsIsRefused(t *testing.T) {
	f := newFleet(hostsNamed(2)...)
	h := newHarness(t, f)
	p := h.plan("v1", plans.Size{N: 1}, 0)
	if _, err := h.engine.Submit(context.Background(), p, SubmitOptions{}); err != nil {
		t.Fatal(err)
	}
	p2 := h.plan("v2", plans.Size{N: 1}, 0)
	p2.Name = "other"
	_, err := h.engine.Submit(context.Background(), p2, SubmitOptions{})
	if !errors.Is(err, deploy.ErrHostLocked) || !strings.Contains(err.Error(), "web-") {
		t.Fatalf("err = %v, want ErrHostLocked naming the other deployment", err)
	}
}

func TestRedeployOfSameVersionSkipsHosts(t *testing.T) {
	f := newFleet(hostsNamed(2)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 1}, 0))
	// web2 was rebuilt by hand: its store record says v1, the host has nothing.
	f.hosts["web2"].current, f.hosts["web2"].running = "", ""
	id, st, err := h.deploy(h.plan("v1", plans.Size{N: 1}, 0), nil)
	if err != nil || st != deploy.StateSucceeded {
		t.Fatalf("state %s err %v", st, err)
	}
	d, _ := h.store.Deployment(id)
	if d.Hosts["web1"].Stage != deploy.StageSkipped {
		t.Errorf("web1 = %s, want skipped", d.Hosts["web1"].Stage)
	}
	if d.Hosts["web2"].Stage != deploy.StageDone || f.hosts["web2"].running != "v1" {
		t.Errorf("web2 = %s running %q, want redeployed", d.Hosts["web2"].Stage, f.hosts["web2"].running)
	}
}

func TestHostThatFailsBeforeActivateIsOnlyPutBack(t *testing.T) {
	f := newFleet(hostsNamed(2)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 1}, 0))
	// web2's SSH dies during install: it still serves v1.
	f.onStage = func(host string, st deploy.Stage, ph deploy.Phase) {
		if host == "web2" && st == deploy.StageInstall {
			f.mu.Lock()
			f.hosts["web2"].dead = true
			f.mu.Unlock()
		}
	}
	_, st, err := h.deploy(h.plan("v2", plans.Size{N: 1}, 0), nil)
	if err != nil || st != deploy.StateRolledBack {
		t.Fatalf("state %s, err %v", st, err)
	}
	if got := h.running(); got["web1"] != "v1" || got["web2"] != "v1" {
		t.Errorf("running = %v", got)
	}
	if len(f.out) != 0 {
		t.Errorf("left out of rotation: %v", f.out)
	}
}

// TestFleetWorkIsBounded: preflight, dials and prunes of a 20-host fleet
// run at most strategy.concurrency at once; each host is dialled once and
// let go (pruned, then disconnected) as soon as its batch is done, not at
// the end of the deployment.
func TestFleetWorkIsBounded(t *testing.T) {
	f := newFleet(hostsNamed(20)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 5}, 0))
	f.mu.Lock()
	f.fleetWork = 5 * time.Millisecond
	f.maxBusy, f.lbLog = 0, nil
	clear(f.dials)
	clear(f.closes)
	for _, fh := range f.hosts {
		fh.cmds = nil
	}
	f.mu.Unlock()

	atFinish := -1
	f.onFinished = func() {
		f.mu.Lock()
		atFinish = sideEffects(f)
		f.mu.Unlock()
	}
	p := h.plan("v2", plans.Size{N: 5}, 0)
	p.Strategy.Concurrency = 4
	h.mustDeploy(p)
	allOn(t, h.running(), "v2")

	f.mu.Lock()
	defer f.mu.Unlock()
	if n := sideEffects(f); n != atFinish {
		t.Errorf("%d host or balancer actions when the deployment was recorded finished, %d after", atFinish, n)
	}
	if f.maxBusy > 4 {
		t.Errorf("%d dials, preflights and prunes at once, want <= 4 (strategy.concurrency)", f.maxBusy)
	}
	// Hosts sort as web1, web10..web13 | ... | web5..web9: the last batch
	// begins at the first drain of one of web5..web9.
	lastBatch := len(f.lbLog)
	for _, n := range []string{"web5", "web6", "web7", "web8", "web9"} {
		if i := slices.Index(f.lbLog, "drain web/"+n); i >= 0 {
			lastBatch = min(lastBatch, i)
		}
	}
	for _, n := range hostsNamed(20) {
		if f.dials[n] != 1 || f.closes[n] != 1 {
			t.Errorf("%s: %d dials, %d closes, want 1 and 1", n, f.dials[n], f.closes[n])
		}
		prunes := 0
		for _, c := range f.hosts[n].cmds {
			if strings.Contains(c, "ls -1t") {
				prunes++
			}
		}
		if prunes != 1 {
			t.Errorf("%s pruned %d times, want 1", n, prunes)
		}
	}
	for _, n := range []string{"web1", "web10", "web11", "web12", "web13"} { // the first batch
		if i, ok := f.closedAt[n]; !ok || i > lastBatch {
			t.Errorf("%s of the first batch was disconnected after %d balancer actions, after the last batch began (%d): %q", n, i, lastBatch, f.lbLog)
		}
	}
}

// A cause shared by hosts is reported once, with the hosts it stopped; a
// cause of one host stays on that host's line.
func TestPreflightErrorsOnce(t *testing.T) {
	down := errors.New("haproxy /run/lb2.sock: connect: connection refused")
	for _, tc := range []struct {
		name  string
		hosts int
		fail  map[string]error
		lb    error
		want  string
	}{
		{name: "one host", hosts: 3, fail: map[string]error{"web3": errors.New("host key unknown")},
			want: "preflight failed, no host was touched:\n  web3: connect web3 (web3:22): host key unknown"},
		{name: "a cause of every host", hosts: 3, lb: down,
			want: "preflight failed, no host was touched:\n  web1, web2, web3 (3 hosts): load balancer: " + down.Error()},
		{name: "many hosts", hosts: 8, lb: down,
			want: "preflight failed, no host was touched:\n  web1, web2, web3, web4, web5 and 3 more (8 hosts): load balancer: " + down.Error()},
		{name: "causes that name their host", hosts: 3, fail: map[string]error{"web1": errors.New("refused"), "web2": errors.New("refused")},
			want: "preflight failed, no host was touched:\n  web1: connect web1 (web1:22): refused\n  web2: connect web2 (web2:22): refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(hostsNamed(tc.hosts)...)
			maps.Copy(f.dialFail, tc.fail)
			f.checkFail = tc.lb
			h := newHarness(t, f)
			_, _, err := h.deploy(h.plan("v1", plans.Size{N: 1}, 0), nil)
			if !errors.Is(err, ErrPreflight) || err.Error() != tc.want {
				t.Fatalf("err =\n%v\nwant\n%s", err, tc.want)
			}
		})
	}
}

// Each health probe during verify is an event (the live view shows the
// last one): "ok", or why not.
func TestProbeEvents(t *testing.T) {
	f := newFleet(hostsNamed(2)...)
	f.broken["v2"] = true
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 1}, 0))
	if _, st, err := h.deploy(h.plan("v2", plans.Size{N: 1}, 0), nil); err != nil || st != deploy.StateRolledBack {
		t.Fatalf("deploy of the broken v2: %s, %v", st, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ok, failed := map[string]int{}, map[string]int{}
	for _, ev := range h.events {
		if ev.Kind != EventProbe {
			continue
		}
		if ev.Stage != deploy.StageVerify || ev.Host == "" {
			t.Errorf("probe event %+v", ev)
		}
		switch {
		case ev.Message == "ok" && ev.Error == "":
			ok[ev.Version]++
		case ev.Message == "" && strings.Contains(ev.Error, "status 500"):
			failed[ev.Version]++
		default:
			t.Errorf("probe event %+v: want ok, or an error", ev)
		}
	}
	// v1 passed on both hosts (deploy, then web1's rollback); v2 failed.
	if ok["v1"] < 3 || failed["v2"] < 1 || ok["v2"] != 0 {
		t.Errorf("probes: ok %v, failed %v", ok, failed)
	}
}

// Events are JSON as docs/json.md says: elapsed in seconds; and read back.
func TestEventJSON(t *testing.T) {
	ev := Event{Time: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC), Deployment: "d1", Kind: EventStage, Host: "web1",
		Stage: deploy.StageInstall, Phase: deploy.PhaseRollout, Version: "v2", Elapsed: 1500 * time.Millisecond}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-11-29T10:00:00Z","deployment":"d1","kind":"stage","host":"web1","stage":"install","phase":"rollout","version":"v2","elapsed":1.5}`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant   %s", b, want)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, ev) {
		t.Errorf("read back %+v, %v; want %+v", back, err, ev)
	}
}
