package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/lab"
)

// acceptedLogins counts SSH logins per host from each sshd's own log.
func acceptedLogins(t testing.TB, l *lab.Lab) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, h := range l.Hosts {
		b, err := os.ReadFile(filepath.Join(l.Dir, "hosts", h.Name, "sshd.log"))
		if err != nil {
			t.Fatalf("read %s's sshd log: %v", h.Name, err)
		}
		out[h.Name] = strings.Count(string(b), "Accepted publickey")
	}
	return out
}

// BenchmarkLabDeploy rolls v1 -> v2 -> v1 ... across 8 lab hosts, batch 2,
// behind HAProxy under HTTP load: the scenario of DESIGN.md's "How fast is
// fast". It reports seconds per deploy, SSH handshakes per host per deploy
// (from sshd's own logs) and failed requests.
func BenchmarkLabDeploy(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for the lab")
	}
	ctx := context.Background()
	l, err := lab.Up(ctx, lab.Options{Hosts: 8})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Down()
	dataDir := filepath.Join(l.Dir, "state")
	plan := func(v string) string {
		art, err := lab.BuildArtifact(ctx, filepath.Join(l.Dir, "artifacts"), v, false)
		if err != nil {
			b.Fatal(err)
		}
		p := filepath.Join(l.Dir, v+".yaml")
		if err := l.WritePlan(p, lab.PlanParams{Version: v, Artifact: art, Batch: "2"}); err != nil {
			b.Fatal(err)
		}
		return p
	}
	plans := []string{plan("v1"), plan("v2")}
	deploy := func(p string) {
		out, err := l.Command(ctx, droverBin, "deploy", p, "--data-dir", dataDir, "--output", "text").CombinedOutput()
		if err != nil {
			b.Fatalf("deploy %s: %v\n%s", p, err, out)
		}
	}
	deploy(plans[0])
	ld, err := l.StartLoad(ctx, 4)
	if err != nil {
		b.Fatal(err)
	}
	before := acceptedLogins(b, l)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		deploy(plans[(i+1)%2])
	}
	elapsed := time.Since(start)
	b.StopTimer()
	res, err := ld.Stop()
	if err != nil {
		b.Fatal(err)
	}
	after := acceptedLogins(b, l)
	logins := 0
	for h, n := range after {
		logins += n - before[h]
	}
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/deploy")
	b.ReportMetric(float64(logins)/float64(b.N*len(l.Hosts)), "handshakes/host/deploy")
	b.ReportMetric(float64(res.Failures), "failed-requests")
	b.ReportMetric(float64(res.Requests), "requests")
}
