package orchestrator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/plans"
)

// BenchmarkEngineOverheadPerHost measures what the engine itself costs per
// host: the remote commands, health checks and balancer calls are fakes that
// answer at once, so what remains is planning, the Raft applies (fsynced to
// bbolt) that record every stage, events and bookkeeping.
func BenchmarkEngineOverheadPerHost(b *testing.B) {
	for _, n := range []int{8, 32} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			f := newFleet(hostsNamed(n)...)
			f.drainDelay = 0
			h := newHarness(b, f)
			versions := make([]*plans.Plan, b.N)
			for i := range versions {
				versions[i] = h.plan(fmt.Sprintf("v%d", i), plans.Size{N: 2}, 0)
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				id, err := h.engine.Submit(context.Background(), versions[i], SubmitOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if st, err := h.engine.Run(context.Background(), nil, id); err != nil || st != deploy.StateSucceeded {
					b.Fatalf("state %s err %v", st, err)
				}
			}
			ms := float64(time.Since(start).Microseconds()) / 1000
			b.ReportMetric(ms/float64(b.N*n), "ms/host")
			// A batch's hosts run in parallel: this is the latency the engine
			// adds to each host's own pipeline.
			b.ReportMetric(ms/float64(b.N*((n+1)/2)), "ms/batch")
		})
	}
}
