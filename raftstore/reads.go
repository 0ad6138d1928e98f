package raftstore

import (
	"maps"
	"slices"

	"github.com/drover-dev/drover/deploy"
)

// Events returns the recorded events of deployment id ("" for all) with
// Seq > after, oldest first, and the Seq of the last applied command: a
// watcher waits on Changed and asks again from there.
func (s *Store) Events(id string, after uint64) ([]deploy.Event, uint64) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	return s.fsm.state.EventsAfter(id, after), s.fsm.state.Seq
}

// Nodes returns the coordinators' registered addresses, by ID.
func (s *Store) Nodes() map[string]Node {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	out := make(map[string]Node, len(s.fsm.state.Nodes))
	for id, n := range s.fsm.state.Nodes {
		out[id] = *n
	}
	return out
}

// TokenByHash finds the token whose hash is h.
func (s *Store) TokenByHash(h string) (Token, bool) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	for _, t := range s.fsm.state.Tokens {
		if t.Hash == h {
			return *t, true
		}
	}
	return Token{}, false
}

// Tokens returns every token (hashes included, never clear text), by name.
func (s *Store) Tokens() []Token {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	out := make([]Token, 0, len(s.fsm.state.Tokens))
	for _, k := range slices.Sorted(maps.Keys(s.fsm.state.Tokens)) {
		out = append(out, *s.fsm.state.Tokens[k])
	}
	return out
}

// Agent returns an enrolled agent's record.
func (s *Store) Agent(name string) (Agent, bool) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	a := s.fsm.state.Agents[name]
	if a == nil {
		return Agent{}, false
	}
	return *a, true
}

// Agents returns every enrolled agent, by name.
func (s *Store) Agents() []Agent {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	out := make([]Agent, 0, len(s.fsm.state.Agents))
	for _, k := range slices.Sorted(maps.Keys(s.fsm.state.Agents)) {
		out = append(out, *s.fsm.state.Agents[k])
	}
	return out
}

// Logs answers a query for recorded command output (deploy.Ledger.LogsOf).
func (s *Store) Logs(q deploy.LogQuery) (deploy.LogPage, error) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	return s.fsm.state.LogsOf(q)
}
