package deploy

import (
	"testing"
	"time"
)

// A deployment is refused when it failed with nothing changed on any host;
// anything that reached a host, or any other end, is not.
func TestRefused(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	stage := func(h string, s Stage) Command {
		return &SetHostStage{ID: "d1", Host: h, Stage: s, Phase: PhaseRollout, Target: "v2", At: t0}
	}
	end := func(st DeploymentState) Command {
		return &SetState{ID: "d1", State: st, Error: "why", At: t0.Add(time.Second)}
	}
	for _, tc := range []struct {
		name string
		cmds []Command
		want bool
	}{
		{"preflight failed", []Command{end(StateFailed)}, true},
		{"min_in_service refused the first host", []Command{stage("web1", StageFailed), end(StateFailed)}, true},
		{"failed in drain", []Command{stage("web1", StageDrain), stage("web1", StageFailed), end(StateFailed)}, false},
		{"failed after a host was done", []Command{stage("web1", StageDrain), stage("web1", StageDone), stage("web2", StageFailed), end(StateFailed)}, false},
		{"every host skipped, then failed", []Command{stage("web1", StageSkipped), stage("web2", StageSkipped), end(StateFailed)}, false},
		{"aborted before anything", []Command{end(StateAborted)}, false},
		{"still running", nil, false},
		{"succeeded", []Command{stage("web1", StageSkipped), stage("web2", StageSkipped), end(StateSucceeded)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLedger()
			hosts := map[string]*HostProgress{}
			for _, h := range []string{"web1", "web2"} {
				hosts[h] = &HostProgress{Name: h, Stage: StagePending, Phase: PhaseRollout, Target: "v2"}
			}
			cmds := append([]Command{&CreateDeployment{At: t0, Deployment: Deployment{ID: "d1", Name: "web", Version: "v2", Kind: KindDeploy,
				Batches: [][]string{{"web1"}, {"web2"}}, Hosts: hosts}}}, tc.cmds...)
			for _, c := range cmds {
				if err := l.Apply(c); err != nil {
					t.Fatal(err)
				}
			}
			if got := l.Deployments["d1"].Refused(); got != tc.want {
				t.Errorf("Refused() = %v, want %v", got, tc.want)
			}
		})
	}
}
