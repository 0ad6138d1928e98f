package orchestrator

import (
	"testing"

	"github.com/drover-dev/drover/plans"
)

// Each new deployment prunes the history to the configured number of
// finished ones first (security.md, finding 9).
func TestSubmitPrunesHistory(t *testing.T) {
	f := newFleet(hostsNamed(1)...)
	h := newHarness(t, f)
	h.engine.d.KeepFinished = 2
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		h.mustDeploy(h.plan(v, plans.Size{N: 1}, 0))
	}
	ds := h.store.Deployments()
	if len(ds) != 3 {
		t.Fatalf("%d deployments kept, want 3 (2 finished before the last one, and it)", len(ds))
	}
	for i, want := range []string{"v2", "v3", "v4"} {
		if ds[i].Version != want {
			t.Errorf("deployment %d is %s, want %s", i, ds[i].Version, want)
		}
	}
}
