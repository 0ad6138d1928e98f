package orchestrator

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/raftstore"
)

// A plan mistake (a wrong health check, a restart that exits 7) fails the
// rollout; the rollback verifies the previous release the way the
// deployment that installed it did, and succeeds.
func TestRollbackVerifiesWithThePreviousPlan(t *testing.T) {
	for name, mistake := range map[string]func(*plans.Plan){
		"wrong health port": func(p *plans.Plan) { p.Health.TCP = &plans.TCPCheck{Port: 9} },
		"restart exits 7":   func(p *plans.Plan) { p.Release.Restart = "bin/restart; exit 7" },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFleet(hostsNamed(4)...)
			h := newHarness(t, f)
			v1 := h.plan("v1", plans.Size{N: 2}, 0)
			v1ID, st, err := h.deploy(v1, nil)
			if err != nil || st != deploy.StateSucceeded {
				t.Fatalf("v1: %s %v", st, err)
			}
			v2 := h.plan("v2", plans.Size{N: 2}, 0)
			mistake(v2)
			id, st, err := h.deploy(v2, nil)
			if err != nil || st != deploy.StateRolledBack {
				d, _ := h.store.Deployment(id)
				t.Fatalf("state %s, err %v, want rolled_back (%s)", st, err, d.Error)
			}
			allOn(t, h.running(), "v1")
			if len(f.out) != 0 {
				t.Errorf("left out of rotation: %v", f.out)
			}
			notes := 0
			for _, ev := range h.events {
				if ev.Deployment == id && ev.Kind == EventNote && strings.Contains(ev.Message, v1ID) {
					notes++
				}
			}
			if notes != 2 {
				t.Errorf("%d events name %s as the source of the checks, want 2 (web1, web2)", notes, v1ID)
			}
		})
	}
}

// historyless hides the deployment history: the engine cannot know which
// plan verified a release.
type historyless struct{ *raftstore.Store }

func (historyless) Deployments() []deploy.Deployment { return nil }

func TestRollbackWithoutHistoryFallsBackAndSaysSo(t *testing.T) {
	f := newFleet(hostsNamed(2)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 1}, 0))
	h.engine.d.Store = historyless{h.store}
	f.broken["v2"] = true
	id, st, err := h.deploy(h.plan("v2", plans.Size{N: 1}, 0), nil)
	if err != nil || st != deploy.StateRolledBack {
		t.Fatalf("state %s, err %v", st, err)
	}
	var warned bool
	for _, ev := range h.events {
		warned = warned || ev.Deployment == id && ev.Kind == EventWarning && ev.Host == "web1" &&
			strings.Contains(ev.Message, "with this plan's restart, health checks and hooks")
	}
	if !warned {
		t.Errorf("no warning that the rollback used the current plan's checks: %+v", h.events)
	}
}

func TestVerifiedBy(t *testing.T) {
	host := func(stage deploy.Stage, ph deploy.Phase, target string) map[string]*deploy.HostProgress {
		return map[string]*deploy.HostProgress{"web1": {Name: "web1", Stage: stage, Phase: ph, Target: target}}
	}
	done := deploy.StageDone
	kdeploy, rollback := deploy.KindDeploy, deploy.KindRollback
	ds := []deploy.Deployment{
		{ID: "a", Kind: kdeploy, Hosts: host(done, deploy.PhaseRollout, "v1")},
		{ID: "b", Kind: kdeploy, Hosts: host(done, deploy.PhaseRollout, "v1")},
		{ID: "c", Kind: kdeploy, Hosts: host(done, deploy.PhaseRollback, "v1")}, // rolled back to v1
		{ID: "d", Kind: rollback, Hosts: host(done, deploy.PhaseRollout, "v1")}, // carries v2's plan
		{ID: "e", Kind: kdeploy, Hosts: host(deploy.StageFailed, deploy.PhaseRollout, "v1")},
		{ID: "f", Kind: kdeploy, Hosts: host(done, deploy.PhaseRollout, "v2")},
	}
	for _, tc := range []struct {
		skip, version, want string
	}{
		{"", "v1", "b"},
		{"b", "v1", "a"},
		{"", "v2", "f"},
		{"", "v3", ""},
	} {
		got, ok := verifiedBy(ds, tc.skip, "web1", tc.version)
		if got.ID != tc.want || ok != (tc.want != "") {
			t.Errorf("verifiedBy(skip %q, %s) = %q %v, want %q", tc.skip, tc.version, got.ID, ok, tc.want)
		}
	}
}

// A redeploy of the running version skips only hosts that are in rotation
// and healthy: a host drained by hand is verified and enabled, a host whose
// app died is restarted, neither is reinstalled.
func TestRedeployPutsBackHostsOutOfRotation(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	f.out["web/web2"] = true
	f.hosts["web3"].running = "crashed"
	id, st, err := h.deploy(h.plan("v1", plans.Size{N: 2}, 0), nil)
	if err != nil || st != deploy.StateSucceeded {
		t.Fatalf("state %s, err %v", st, err)
	}
	allOn(t, h.running(), "v1")
	if len(f.out) != 0 {
		t.Errorf("left out of rotation: %v", f.out)
	}
	d, _ := h.store.Deployment(id)
	for n, want := range map[string]deploy.Stage{"web1": deploy.StageSkipped, "web2": deploy.StageDone, "web3": deploy.StageDone, "web4": deploy.StageSkipped} {
		if got := d.Hosts[n].Stage; got != want {
			t.Errorf("%s: %s, want %s", n, got, want)
		}
	}
	for _, n := range hostsNamed(4) {
		if u := f.hosts[n].uploads; u != 1 {
			t.Errorf("%s: %d uploads, want 1 (no reinstall)", n, u)
		}
	}
	var said []string
	for _, ev := range h.events {
		if ev.Deployment == id && ev.Kind == EventNote && strings.Contains(ev.Message, "no reinstall") {
			said = append(said, ev.Host)
		}
	}
	if strings.Join(said, " ") != "web2 web3" {
		t.Errorf("re-enabled hosts reported: %v, want web2 web3", said)
	}
}

// min_in_service holds during the rollout, counting servers already down.
func TestMinInServiceCountsServersAlreadyDown(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	f.hosts["web4"].running = "crashed" // DOWN in the balancer
	f.maxOut = 0
	p := h.plan("v2", plans.Size{N: 2}, 0)
	p.Strategy.MinInService = plans.Size{N: 2}
	// web1 and web2 form the first batch; with web4 down, only one of
	// them may leave at a time (web3 and the other stay).
	maxOut := 0
	f.onStage = func(host string, st deploy.Stage, ph deploy.Phase) {
		f.mu.Lock()
		defer f.mu.Unlock()
		n := 0
		for _, fh := range f.hosts {
			if s := f.stateLocked("web/" + fh.name); !s.InRotation {
				n++
			}
		}
		maxOut = max(maxOut, n)
	}
	_, st, err := h.deploy(p, nil)
	if err != nil || st != deploy.StateSucceeded {
		t.Fatalf("state %s, err %v", st, err)
	}
	if maxOut > 2 {
		t.Errorf("%d servers out of rotation at once (web4 down + batch), want <= 2", maxOut)
	}
	allOn(t, h.running(), "v2")
}

// A host that min_in_service refuses is not touched, and a deployment that
// ends with hosts out of rotation is failed, naming them.
func TestMinInServiceRefusalTouchesNothing(t *testing.T) {
	f := newFleet(hostsNamed(3)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 1}, 0))
	f.hosts["web2"].running, f.hosts["web3"].running = "crashed", "crashed"
	f.lbLog = nil
	p := h.plan("v2", plans.Size{N: 1}, 0)
	p.Strategy.MinInService = plans.Size{N: 1}
	id, st, err := h.deploy(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := h.store.Deployment(id)
	if st != deploy.StateFailed || !strings.Contains(d.Hosts["web1"].Error, "min_in_service") {
		t.Fatalf("state %s, web1 %+v", st, d.Hosts["web1"])
	}
	if d.Hosts["web1"].Touched || len(f.lbLog) != 0 || f.hosts["web1"].running != "v1" {
		t.Errorf("web1 touched %v, balancer %v, runs %s", d.Hosts["web1"].Touched, f.lbLog, f.hosts["web1"].running)
	}
	if !strings.Contains(d.Error, "no host was touched") {
		t.Errorf("error = %q", d.Error)
	}
}

// A deployment that would end "succeeded" or "rolled back" with a host out
// of rotation ends failed, naming it.
func TestNeverSucceededOutOfRotation(t *testing.T) {
	f := newFleet(hostsNamed(3)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 1}, 0))
	// web2's app dies while web3 is deployed: nothing the engine did.
	f.onStage = func(host string, st deploy.Stage, ph deploy.Phase) {
		if host == "web3" && st == deploy.StageEnable {
			f.mu.Lock()
			f.hosts["web2"].running = "crashed"
			f.mu.Unlock()
		}
	}
	id, st, err := h.deploy(h.plan("v2", plans.Size{N: 1}, 0), nil)
	if err != nil || st != deploy.StateFailed {
		t.Fatalf("state %s, err %v, want failed", st, err)
	}
	d, _ := h.store.Deployment(id)
	if !strings.Contains(d.Error, "out of rotation at the end: web2 (DOWN)") {
		t.Errorf("error = %q, want web2 named", d.Error)
	}
}

// repair brings every host to its recorded release, healthy and in
// rotation: drained by hand, app killed, `current` switched by hand.
func TestRepair(t *testing.T) {
	f := newFleet(hostsNamed(4)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 2}, 0))
	h.mustDeploy(h.plan("v2", plans.Size{N: 2}, 0))
	f.out["web/web1"] = true
	f.hosts["web2"].running = "crashed"
	f.hosts["web3"].current, f.hosts["web3"].running = "v1", "v1"
	p := h.plan("v2", plans.Size{N: 2}, 0)
	p.Strategy.MinInService = plans.Size{N: 1}
	id, skipped, err := h.engine.SubmitRepair(context.Background(), p)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("submit: %v (skipped %v)", err, skipped)
	}
	st, err := h.engine.Run(context.Background(), nil, id)
	if err != nil || st != deploy.StateSucceeded {
		d, _ := h.store.Deployment(id)
		t.Fatalf("repair: %s %v (%s)", st, err, d.Error)
	}
	allOn(t, h.running(), "v2")
	if len(f.out) != 0 {
		t.Errorf("left out of rotation: %v", f.out)
	}
	d, _ := h.store.Deployment(id)
	if got := d.Hosts["web4"].Stage; got != deploy.StageSkipped {
		t.Errorf("web4: %s, want skipped", got)
	}
	for _, n := range hostsNamed(4) {
		if r := h.store.HostRecord(n); r.Current != "v2" || r.Previous != "v1" {
			t.Errorf("%s record = %+v", n, r)
		}
	}
}

func TestRepairOfHostsWithoutRecordIsRefused(t *testing.T) {
	f := newFleet(hostsNamed(2)...)
	h := newHarness(t, f)
	_, skipped, err := h.engine.SubmitRepair(context.Background(), h.plan("v1", plans.Size{N: 1}, 0))
	if !errors.Is(err, ErrNothingToRepair) || len(skipped) != 2 {
		t.Errorf("err %v, skipped %v", err, skipped)
	}
}
