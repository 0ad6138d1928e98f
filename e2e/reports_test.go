package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
)

// TestClusterShowsReports: what the leader's engine saw (the preflight,
// each host's health probes during verify, the stage a host failed in) is
// recorded in the ledger, so a cluster deploy shows it as a local deploy
// does, and so does `status --watch` from another terminal.
func TestClusterShowsReports(t *testing.T) {
	c := newCluster(t, 2)
	has := func(evs []orchestrator.Event, kind orchestrator.EventKind, ok func(orchestrator.Event) bool) bool {
		return slices.ContainsFunc(evs, func(ev orchestrator.Event) bool { return ev.Kind == kind && ok(ev) })
	}
	anyEv := func(orchestrator.Event) bool { return true }
	hosts := []string{}
	for _, h := range c.lab.Hosts {
		hosts = append(hosts, h.Name)
	}

	// The deploy's own watcher.
	code, d := c.runWith(c.env(), "deploy", c.plan("v1", false, "1"))
	if code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	evs := d.stdout.all()
	if !has(evs, orchestrator.EventPreflight, func(ev orchestrator.Event) bool { return strings.Contains(ev.Message, "hosts ready") }) {
		t.Errorf("no preflight event in the cluster deploy's output:\n%s", d.stdout.text())
	}
	for _, h := range hosts {
		if !has(evs, orchestrator.EventProbe, func(ev orchestrator.Event) bool { return ev.Host == h && ev.Message == "ok" }) {
			t.Errorf("no passing health probe of %s in the cluster deploy's output:\n%s", h, d.stdout.text())
		}
	}

	// Another terminal re-attaches to a detached deployment held in its
	// first host's before_drain hook until the watcher runs.
	gate, held := holdDrains(c.lab.Dir, "gate-v2")
	var rec struct{ ID string }
	if detached := c.cli(0, "deploy", c.plan("v2", true, "1", held), "--detach"); json.Unmarshal([]byte(detached), &rec) != nil || rec.ID == "" {
		t.Fatalf("deploy --detach -o json: %s", detached)
	}
	id := rec.ID
	w := c.startWith(c.env(), "status", id, "--watch")
	w.stdout.waitFor(t, "status --watch showing the preflight", func(ev orchestrator.Event) bool {
		return ev.Kind == orchestrator.EventPreflight
	})
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := w.wait(t); code != 3 {
		t.Fatalf("status --watch of a broken release: exit %d, want 3 (rolled back)\n%s\n%s", code, w.stdout.text(), w.stderr.String())
	}
	evs = w.stdout.all()
	if !has(evs, orchestrator.EventProbe, func(ev orchestrator.Event) bool { return ev.Error != "" }) {
		t.Errorf("status --watch shows no failing health probe of the broken release:\n%s", w.stdout.text())
	}
	if !has(evs, orchestrator.EventHostFailed, func(ev orchestrator.Event) bool { return ev.Stage == deploy.StageVerify }) {
		t.Errorf("status --watch: no host_failed naming the verify stage:\n%s", w.stdout.text())
	}
	if !has(evs, orchestrator.EventRollback, anyEv) {
		t.Errorf("status --watch: no rollback event:\n%s", w.stdout.text())
	}
}

// holdDrains returns a plan option whose hosts wait in their before_drain
// hook (still in rotation) until the file gate exists, and gate's path in
// dir.
func holdDrains(dir, name string) (gate string, opt func(*lab.PlanParams)) {
	gate = filepath.Join(dir, name)
	return gate, func(p *lab.PlanParams) {
		p.Extra = fmt.Sprintf("hooks:\n  before_drain: [\"while [ ! -e %s ]; do sleep 0.05; done\"]", gate)
	}
}
