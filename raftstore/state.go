package raftstore

import "github.com/drover-dev/drover/deploy"

// State is the whole replicated state. It is only changed by apply.
type State struct {
	// Ledger is the domain: deployments, host records, events. Embedded,
	// its fields are the state's own in JSON, as snapshots always had them.
	deploy.Ledger
	Nodes  map[string]*Node  `json:"nodes,omitempty"`
	Tokens map[string]*Token `json:"tokens,omitempty"`
	Agents map[string]*Agent `json:"agents,omitempty"`
	// Requests are the request keys of the latest idempotent writes,
	// oldest first (at most maxRequestKeys).
	Requests []AppliedRequest `json:"requests,omitempty"`
}

func newState() *State {
	return &State{Ledger: deploy.NewLedger(),
		Nodes: map[string]*Node{}, Tokens: map[string]*Token{}, Agents: map[string]*Agent{}}
}

// snapshotCopy copies what apply mutates in place, sharing what it never
// changes once recorded (see deploy.Ledger.Copy).
func (s *State) snapshotCopy() *State {
	c := &State{Ledger: s.Ledger.Copy(), Nodes: make(map[string]*Node, len(s.Nodes)),
		Tokens: make(map[string]*Token, len(s.Tokens)), Agents: make(map[string]*Agent, len(s.Agents)),
		// Shared like Events: applyOnce only appends, or replaces the slice.
		Requests: s.Requests[:len(s.Requests):len(s.Requests)]}
	copyRecords(c.Nodes, s.Nodes)
	copyRecords(c.Tokens, s.Tokens)
	copyRecords(c.Agents, s.Agents)
	return c
}

func copyRecords[V any](dst, src map[string]*V) {
	for k, v := range src {
		vc := *v
		dst[k] = &vc
	}
}
