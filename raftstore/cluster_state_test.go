package raftstore

import (
	"errors"
	"testing"
	"time"
)

var tc0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// Tokens are stored once per name, the bootstrap token only when none of
// its role exists, and a single-use token is spent exactly once, before
// it expires, and only as its own role.
func TestTokenCommands(t *testing.T) {
	steps := []struct {
		name string
		cmd  Command
		want error
	}{
		{"bootstrap token", &PutToken{IfNone: true, Token: Token{Name: "bootstrap", Role: RoleManage, Hash: "h-boot"}}, nil},
		{"bootstrap offered again: kept once", &PutToken{IfNone: true, Token: Token{Name: "bootstrap2", Role: RoleManage, Hash: "h-boot2"}}, nil},
		{"same name again", &PutToken{Token: Token{Name: "bootstrap", Role: RoleRead, Hash: "h-x"}}, ErrExists},
		{"no hash", &PutToken{Token: Token{Name: "x", Role: RoleRead}}, ErrBadCommand},
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
	d := Deployment{ID: "d1", Name: "web", Version: "v2", Kind: KindDeploy, Batches: [][]string{{"web1"}}}
	cmds := []Command{
		&CreateDeployment{Deployment: d, At: tc0},
		&SetHostStage{ID: "d1", Host: "web1", Stage: StageDrain, Phase: PhaseRollout, At: tc0},
		&PutToken{Token: Token{Name: "x", Role: RoleRead, Hash: "h"}},
		&SetState{ID: "d1", State: StateSucceeded, At: tc0},
	}
	for _, c := range cmds {
		if err := s.apply(c); err != nil {
			t.Fatal(err)
		}
	}
	all := s.eventsAfter("d1", 0)
	if len(all) != 3 || all[0].Kind != EvCreated || all[1].Kind != EvStage || all[2].Kind != EvState {
		t.Fatalf("events: %+v", all)
	}
	if s.Seq != 4 || all[2].Seq != 4 {
		t.Fatalf("seq %d, last event seq %d, want 4", s.Seq, all[2].Seq)
	}
	if after := s.eventsAfter("d1", all[1].Seq); len(after) != 1 || after[0].Kind != EvState {
		t.Fatalf("after %d: %+v", all[1].Seq, after)
	}
}
