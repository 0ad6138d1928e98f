package deploy

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/drover-dev/drover/plans"
)

// RollsBack says whether a host whose rollout failed is taken back to its
// previous release: when the plan asks for automatic rollback, except in a
// repair, which has no other release to go to (its failures stay as they
// are, reported).
func RollsBack(kind Kind, automatic bool) bool {
	return automatic && kind != KindRepair
}

// Policy is what of a deployment's plan decides which batch is open.
type Policy struct {
	// RollsBack: a host whose rollout failed is rolled back (RollsBack).
	RollsBack bool
	// Gated: each batch is judged by analysis gates once its hosts are
	// done. Only a rollout of a new release is: a rollback or a repair
	// returns to a release already judged.
	Gated bool
	// Canary: the first batch is a canary (strategy.canary), watched at a
	// share of the traffic once its hosts are done, gates or not. Like
	// Gated, only in a rollout of a new release.
	Canary bool
}

// PolicyOf is the policy of a deployment of kind kind running plan p.
func PolicyOf(kind Kind, p *plans.Plan) Policy {
	return Policy{RollsBack: RollsBack(kind, p.Rollback.Automatic), Gated: kind == KindDeploy && p.HasGates(),
		Canary: kind == KindDeploy && p.Strategy.Canary != nil}
}

// Policy is PolicyOf for d, with its recorded plan.
func (d *Deployment) Policy() (Policy, error) {
	var p plans.Plan
	if err := json.Unmarshal(d.Plan, &p); err != nil {
		return Policy{}, fmt.Errorf("policy of %s: %w", d.ID, err)
	}
	return PolicyOf(d.Kind, &p), nil
}

// OpenBatch is the first batch with work left, or len(Batches) when none
// has: where a running deployment stands, and where a resumed run starts.
// A batch has work left while one of its hosts has (pending or in flight,
// or failed in its rollout when failed hosts are rolled back), and, when
// the deployment is gated, while its analysis is due (AwaitsAnalysis).
func OpenBatch(d *Deployment, p Policy) int {
	for b, batch := range d.Batches {
		if AwaitsAnalysis(d, b, p) {
			return b
		}
		for _, name := range batch {
			if hasWork(d.Hosts[name], p.RollsBack) {
				return b
			}
		}
	}
	return len(d.Batches)
}

// AwaitsAnalysis reports whether batch b must still be judged by the gates:
// the deployment is gated (or b is its canary), a host of the batch
// finished its rollout, and no AnalysisPassed is recorded for it. A failed
// analysis records the batch's hosts failed, which ends the wait.
func AwaitsAnalysis(d *Deployment, b int, p Policy) bool {
	if !(p.Gated || IsCanary(b, p)) || b < 0 || b >= len(d.Batches) || slices.Contains(d.AnalysisPassed, b) {
		return false
	}
	for _, name := range d.Batches[b] {
		if hp := d.Hosts[name]; hp != nil && hp.Stage == StageDone && hp.Phase == PhaseRollout {
			return true
		}
	}
	return false
}

// IsCanary reports whether batch b is the canary of a deployment with
// policy p: its first batch.
func IsCanary(b int, p Policy) bool { return p.Canary && b == 0 }

func hasWork(hp *HostProgress, rollsBack bool) bool {
	switch {
	case hp == nil, hp.Stage == StageDone, hp.Stage == StageSkipped:
		return false
	case hp.Stage == StageFailed:
		return hp.Phase == PhaseRollout && rollsBack
	}
	return true
}

// OpenBatch is OpenBatch with d's own policy. With a plan that cannot be
// read no engine can run d (it decodes the plan first), so nothing will
// roll a failed host back or judge a batch: they have no work left.
func (d *Deployment) OpenBatch() int {
	p, _ := d.Policy() // zero on error: nothing rolls back, nothing is judged
	return OpenBatch(d, p)
}
