package raftstore

import (
	"errors"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
)

var tc0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// Tokens are stored once per name, the bootstrap token only when none of
// its role exists, and a single-use token is spent exactly once, before
// it expires, and only as its own role.
func TestTokenCommands(t *testing.T) {
	steps := []struct {
		name string
		cmd  deploy.Command
		want error
	}{
		{"bootstrap token", &PutToken{IfNone: true, Token: Token{Name: "bootstrap", Role: RoleManage, Hash: "h-boot"}}, nil},
		{"bootstrap offered again: kept once", &PutToken{IfNone: true, Token: Token{Name: "bootstrap2", Role: RoleManage, Hash: "h-boot2"}}, nil},
		{"same name again", &PutToken{Token: Token{Name: "bootstrap", Role: RoleRead, Hash: "h-x"}}, deploy.ErrExists},
		{"no hash", &PutToken{Token: Token{Name: "x", Role: RoleRead}}, deploy.ErrBadCommand},
		{"join token", &PutToken{Token: Token{Name: "join-web1", Role: RoleAgentJoin, Hash: "h-join", Expires: tc0.Add(time.Minute)}}, nil},
		{"manage token is not a join token", &SpendToken{Hash: "h-boot", Role: RoleAgentJoin, At: tc0}, ErrNoToken},
		{"spent once", &SpendToken{Hash: "h-join", Role: RoleAgentJoin, At: tc0}, nil},
		{"replayed", &SpendToken{Hash: "h-join", Role: RoleAgentJoin, At: tc0}, ErrTokenSpent},
		{"late token", &PutToken{Token: Token{Name: "join-web2", Role: RoleAgentJoin, Hash: "h-late", Expires: tc0.Add(time.Minute)}}, nil},
		{"expired", &SpendToken{Hash: "h-late", Role: RoleAgentJoin, At: tc0.Add(time.Minute)}, ErrTokenExpired},
		{"revoke", &DeleteToken{Name: "join-web2"}, nil},
		{"revoke unknown", &DeleteToken{Name: "join-web2"}, ErrNoToken},
	}
	s := newState()
	for _, st := range steps {
		if err := s.apply(st.cmd); !errors.Is(err, st.want) || (st.want == nil && err != nil) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.want)
		}
	}
	if _, ok := s.Tokens["bootstrap2"]; ok {
		t.Error("a second bootstrap token was stored")
	}
}

// A join token enrolls only the name it was made for, and an enrolled or
// revoked name only when it says Replace (issue 8, finding 2).
func TestJoinTokenBoundToName(t *testing.T) {
	s := newState()
	s.Agents["web1"] = &Agent{Name: "web1", Serial: "01", Revoked: true}
	put := func(name, agent string, replace bool) {
		t.Helper()
		if err := s.apply(&PutToken{Token: Token{Name: name, Role: RoleAgentJoin, Hash: "h-" + name, Agent: agent, Replace: replace}}); err != nil {
			t.Fatal(err)
		}
	}
	put("for-web9", "web9", false)
	put("for-web1", "web1", false)
	put("for-web1-replace", "web1", true)
	put("unbound", "", false)
	steps := []struct {
		name string
		cmd  *SpendToken
		want error
	}{
		{"web9's token for web1", &SpendToken{Hash: "h-for-web9", Role: RoleAgentJoin, Agent: "web1", At: tc0}, ErrTokenAgent},
		{"web1's token, web1 revoked, no replace", &SpendToken{Hash: "h-for-web1", Role: RoleAgentJoin, Agent: "web1", At: tc0}, ErrAgentEnrolled},
		{"an unbound token for an enrolled name", &SpendToken{Hash: "h-unbound", Role: RoleAgentJoin, Agent: "web1", At: tc0}, ErrAgentEnrolled},
		{"web1's replace token", &SpendToken{Hash: "h-for-web1-replace", Role: RoleAgentJoin, Agent: "web1", At: tc0}, nil},
		{"web9's token for web9", &SpendToken{Hash: "h-for-web9", Role: RoleAgentJoin, Agent: "web9", At: tc0}, nil},
		{"an unbound token for a new name", &SpendToken{Hash: "h-unbound", Role: RoleAgentJoin, Agent: "web3", At: tc0}, nil},
	}
	for _, st := range steps {
		if err := s.apply(st.cmd); !errors.Is(err, st.want) || (st.want == nil && err != nil) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.want)
		}
	}
	// Refused attempts did not spend the tokens.
	if s.Tokens["for-web1"].Used {
		t.Error("a refused attempt spent web1's token")
	}
}

func TestAgentCommands(t *testing.T) {
	s := newState()
	if err := s.apply(&RevokeAgent{Name: "web1"}); !errors.Is(err, ErrUnknownAgent) {
		t.Fatalf("revoke unknown: %v", err)
	}
	if err := s.apply(&EnrollAgent{Name: "web1", Serial: "01", At: tc0}); err != nil {
		t.Fatal(err)
	}
	if err := s.apply(&RevokeAgent{Name: "web1"}); err != nil || !s.Agents["web1"].Revoked {
		t.Fatalf("revoke: %v %+v", err, s.Agents["web1"])
	}
	// A fresh enrollment (a new join token) replaces the certificate.
	if err := s.apply(&EnrollAgent{Name: "web1", Serial: "02", At: tc0}); err != nil {
		t.Fatal(err)
	}
	if a := s.Agents["web1"]; a.Revoked || a.Serial != "02" {
		t.Fatalf("re-enrolled agent: %+v", a)
	}
}

// Every applied command advances Seq, and events of a deployment come
// back after a given Seq only.
func TestEventsAfter(t *testing.T) {
	s := newState()
	d := deploy.Deployment{ID: "d1", Name: "web", Version: "v2", Kind: deploy.KindDeploy, Batches: [][]string{{"web1"}}}
	cmds := []deploy.Command{
		&deploy.CreateDeployment{Deployment: d, At: tc0},
		&deploy.SetHostStage{ID: "d1", Host: "web1", Stage: deploy.StageDrain, Phase: deploy.PhaseRollout, At: tc0},
		&PutToken{Token: Token{Name: "x", Role: RoleRead, Hash: "h"}},
		&deploy.SetState{ID: "d1", State: deploy.StateSucceeded, At: tc0},
	}
	for _, c := range cmds {
		if err := s.apply(c); err != nil {
			t.Fatal(err)
		}
	}
	all := s.EventsAfter("d1", 0)
	if len(all) != 3 || all[0].Kind != deploy.EvCreated || all[1].Kind != deploy.EvStage || all[2].Kind != deploy.EvState {
		t.Fatalf("events: %+v", all)
	}
	if s.Seq != 4 || all[2].Seq != 4 {
		t.Fatalf("seq %d, last event seq %d, want 4", s.Seq, all[2].Seq)
	}
	if after := s.EventsAfter("d1", all[1].Seq); len(after) != 1 || after[0].Kind != deploy.EvState {
		t.Fatalf("after %d: %+v", all[1].Seq, after)
	}
}
