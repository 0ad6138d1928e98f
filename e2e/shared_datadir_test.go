package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/orchestrator"
)

// TestLocalDeployServesItsDataDir: while a local `drover deploy` runs,
// other drover processes on its data dir talk to it over the data dir's
// socket: `status`, `history` and `status --watch` show it, `pause` pauses
// it at its next safe point, and a second deploy of the same hosts is
// refused naming the running deployment (they used to fail with "data
// dir is in use").
func TestLocalDeployServesItsDataDir(t *testing.T) {
	s := newSession(t, 2)
	if code, d := s.run("deploy", s.plan("v1", false, "1")); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	// v2's first host waits in its before_drain hook until the test opens
	// the gate.
	gate, held := holdDrains(s.lab.Dir, "gate-v2")
	plan := s.plan("v2", false, "1", held)
	d := s.start("deploy", plan)
	started := d.stdout.waitFor(t, "the deploy's start", func(ev orchestrator.Event) bool { return ev.Kind == orchestrator.EventStarted })
	id := started.Deployment
	d.stdout.waitFor(t, "web1 draining", func(ev orchestrator.Event) bool {
		return ev.Kind == orchestrator.EventStage && ev.Host == "web1"
	})
	if _, err := os.Stat(filepath.Join(s.dataDir, "drover.sock")); err != nil {
		t.Fatalf("no socket in the data dir while the deploy runs: %v", err)
	}

	code, st := s.run("status")
	var status struct{ ID, State string }
	if err := json.Unmarshal([]byte(st.stdout.text()), &status); code != 0 || err != nil || status.ID != id || status.State != "running" {
		t.Fatalf("status from a second process: exit %d (%v)\n%s\n%s", code, err, st.stdout.text(), st.stderr.String())
	}
	if code, h := s.run("history"); code != 0 || !strings.Contains(h.stdout.text(), id) {
		t.Fatalf("history from a second process: exit %d\n%s\n%s", code, h.stdout.text(), h.stderr.String())
	}
	code, again := s.run("deploy", plan)
	if code != 2 || !strings.Contains(again.stderr.String(), id) || !strings.Contains(again.stderr.String(), "held") {
		t.Fatalf("a second deploy of the same hosts: exit %d, stderr %q; want exit 2 naming %s", code, again.stderr.String(), id)
	}
	w := s.start("status", id, "--watch")
	w.stdout.waitFor(t, "status --watch showing the running deploy", func(ev orchestrator.Event) bool {
		return ev.Kind == orchestrator.EventPreflight
	})
	code, p := s.run("pause", id)
	var paused struct {
		ID             string
		PauseRequested bool `json:"pause_requested"`
	}
	if err := json.Unmarshal([]byte(p.stdout.text()), &paused); code != 0 || err != nil || paused.ID != id || !paused.PauseRequested {
		t.Fatalf("pause from a second process: exit %d (%v)\n%s\n%s", code, err, p.stdout.text(), p.stderr.String())
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t); code != 130 {
		t.Fatalf("the deploy after a pause from another process: exit %d, want 130 (paused)\n%s\n%s", code, d.stdout.text(), d.stderr.String())
	}
	if code := w.wait(t); code != 130 {
		t.Errorf("status --watch of the deploy paused from another process: exit %d, want 130 (paused)\n%s", code, w.stderr.String())
	}
	if !slices.ContainsFunc(w.stdout.all(), func(ev orchestrator.Event) bool { return ev.Kind == orchestrator.EventPaused }) {
		t.Errorf("status --watch did not show the pause:\n%s\n%s", w.stdout.text(), w.stderr.String())
	}
	if v := s.versions(); v["web1"] != "v2" || v["web2"] != "v1" {
		t.Errorf("paused after batch 1: hosts run %v, want web1 on v2 and web2 still on v1", v)
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, "drover.sock")); !os.IsNotExist(err) {
		t.Errorf("the socket outlived its deploy: %v", err)
	}
	if code, r := s.run("resume", id); code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", code, r.stdout.text(), r.stderr.String())
	}
	s.expectAllOn("v2")
}
