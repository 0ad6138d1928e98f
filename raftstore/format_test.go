package raftstore

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/drover-dev/drover/deploy"
)

// The state's JSON (snapshots, backups) is what raftstore wrote before the
// domain moved to package deploy, byte for byte: the golden file was made
// by the code of that time from these same commands. Old snapshots and
// backups restore, and new ones read as they did.
func TestStateFormatUnchanged(t *testing.T) {
	golden, err := os.ReadFile("testdata/state-before-deploy-package.json")
	if err != nil {
		t.Fatal(err)
	}
	s := newState()
	cmds := []deploy.Command{
		&deploy.CreateDeployment{Deployment: deploy.Deployment{ID: "d1", Name: "web", Version: "v1", Kind: deploy.KindDeploy,
			Plan: json.RawMessage(`{"a":1}`), Batches: [][]string{{"a", "b"}}}, At: t0},
		&deploy.SetHostStage{ID: "d1", Host: "a", Stage: deploy.StageDrain, Phase: deploy.PhaseRollout, At: t0},
		&deploy.SetHostStage{ID: "d1", Host: "a", Stage: deploy.StageDone, Phase: deploy.PhaseRollout, At: t0},
		&deploy.Request{ID: "d1", Pause: true, At: t0},
		&deploy.SetState{ID: "d1", State: deploy.StatePaused, At: t0},
		&PutToken{Token: Token{Name: "ops", Role: RoleManage, Hash: "h", Created: t0}},
		&RegisterNode{Node: Node{ID: "n1", RaftAddr: "x:1", HTTPAddr: "x:2"}},
	}
	for i, c := range cmds {
		key := ""
		if i == 3 {
			key = "k1"
		}
		if err := s.applyOnce(c, key); err != nil {
			t.Fatal(err)
		}
	}
	got, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, golden) {
		t.Errorf("state JSON changed:\n got %s\nwant %s", got, golden)
	}
	restored := newState()
	if err := json.Unmarshal(golden, restored); err != nil {
		t.Fatal(err)
	}
	if again, _ := json.Marshal(restored); !bytes.Equal(again, golden) {
		t.Errorf("golden state does not read back the same:\n got %s\nwant %s", again, golden)
	}
}
