package deploy

import (
	"encoding/json"
	"fmt"

	"github.com/drover-dev/drover/plans"
)

// RollsBack says whether a host whose rollout failed is taken back to its
// previous release: when the plan asks for automatic rollback, except in a
// repair, which has no other release to go to (its failures stay as they
// are, reported).
func RollsBack(kind Kind, automatic bool) bool {
	return automatic && kind != KindRepair
}

// RollsBack is RollsBack for d, with the rollback policy of its plan.
func (d *Deployment) RollsBack() (bool, error) {
	var p struct {
		Rollback plans.Rollback `json:"rollback"`
	}
	if err := json.Unmarshal(d.Plan, &p); err != nil {
		return false, fmt.Errorf("rollback policy of %s: %w", d.ID, err)
	}
	return RollsBack(d.Kind, p.Rollback.Automatic), nil
}

// OpenBatch is the first batch with a host that still has work, or
// len(Batches) when none has: where a running deployment stands, and where
// a resumed run starts. rollsBack is RollsBack for d: a host whose rollout
// failed still has work (its rollback) only when it is rolled back.
func OpenBatch(d *Deployment, rollsBack bool) int {
	for b, batch := range d.Batches {
		for _, name := range batch {
			if hasWork(d.Hosts[name], rollsBack) {
				return b
			}
		}
	}
	return len(d.Batches)
}

func hasWork(hp *HostProgress, rollsBack bool) bool {
	switch {
	case hp == nil, hp.Stage == StageDone, hp.Stage == StageSkipped:
		return false
	case hp.Stage == StageFailed:
		return hp.Phase == PhaseRollout && rollsBack
	}
	return true
}

// OpenBatch is OpenBatch with d's own rollback policy. With a plan that
// cannot be read no engine can run d (it decodes the plan first), so
// nothing will roll a failed host back: it has no work left.
func (d *Deployment) OpenBatch() int {
	rb, err := d.RollsBack()
	return OpenBatch(d, rb && err == nil)
}
