package deploy

import (
	"encoding/json"
	"testing"

	"github.com/drover-dev/drover/plans"
)

func TestOpenBatch(t *testing.T) {
	hp := func(st Stage, ph Phase) *HostProgress { return &HostProgress{Stage: st, Phase: ph} }
	tests := []struct {
		name      string
		hosts     map[string]*HostProgress // a in batch 1, b in batch 2
		automatic bool
		kind      Kind
		want      int
	}{
		{"nothing done", map[string]*HostProgress{"a": hp(StagePending, PhaseRollout), "b": hp(StagePending, PhaseRollout)}, true, KindDeploy, 0},
		{"first batch in flight", map[string]*HostProgress{"a": hp(StageInstall, PhaseRollout), "b": hp(StagePending, PhaseRollout)}, true, KindDeploy, 0},
		{"first batch done", map[string]*HostProgress{"a": hp(StageDone, PhaseRollout), "b": hp(StagePending, PhaseRollout)}, true, KindDeploy, 1},
		{"first batch skipped", map[string]*HostProgress{"a": hp(StageSkipped, PhaseRollout), "b": hp(StagePending, PhaseRollout)}, true, KindDeploy, 1},
		{"all done", map[string]*HostProgress{"a": hp(StageDone, PhaseRollout), "b": hp(StageDone, PhaseRollout)}, true, KindDeploy, 2},
		// The case where the display's rule (a failed host is settled)
		// differed from the engine's: the host still has its rollback to do.
		{"rollout failed, rolls back", map[string]*HostProgress{"a": hp(StageFailed, PhaseRollout), "b": hp(StagePending, PhaseRollout)}, true, KindDeploy, 0},
		{"rollout failed, automatic rollback off", map[string]*HostProgress{"a": hp(StageFailed, PhaseRollout), "b": hp(StagePending, PhaseRollout)}, false, KindDeploy, 1},
		{"rollout failed in a repair", map[string]*HostProgress{"a": hp(StageFailed, PhaseRollout), "b": hp(StagePending, PhaseRollout)}, true, KindRepair, 1},
		{"rollback failed", map[string]*HostProgress{"a": hp(StageFailed, PhaseRollback), "b": hp(StagePending, PhaseRollout)}, true, KindDeploy, 1},
		{"rolling back", map[string]*HostProgress{"a": hp(StageEnable, PhaseRollback), "b": hp(StagePending, PhaseRollout)}, true, KindDeploy, 0},
		{"rolled back", map[string]*HostProgress{"a": hp(StageDone, PhaseRollback), "b": hp(StagePending, PhaseRollout)}, true, KindDeploy, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p plans.Plan
			p.Rollback.Automatic = tc.automatic
			planJSON, err := json.Marshal(&p)
			if err != nil {
				t.Fatal(err)
			}
			d := Deployment{ID: "d1", Kind: tc.kind, Plan: planJSON, Batches: [][]string{{"a"}, {"b"}}, Hosts: tc.hosts}
			// The engine's call: the policy of the plan it decoded.
			engine := OpenBatch(&d, PolicyOf(d.Kind, &p))
			// The display's call: the policy read from the recorded plan.
			display := d.OpenBatch()
			if engine != tc.want || display != tc.want {
				t.Errorf("open batch: engine %d, display %d, want %d", engine, display, tc.want)
			}
		})
	}
}

// A deployment whose plan cannot be read has no engine to roll a failed
// host back: the display counts the host as settled.
func TestOpenBatchUnreadablePlan(t *testing.T) {
	d := Deployment{ID: "d1", Kind: KindDeploy, Batches: [][]string{{"a"}, {"b"}},
		Hosts: map[string]*HostProgress{"a": {Stage: StageFailed, Phase: PhaseRollout}, "b": {Stage: StagePending}}}
	if got := d.OpenBatch(); got != 1 {
		t.Errorf("open batch = %d, want 1", got)
	}
}
