package raftstore

import (
	"fmt"
	"time"
)

// Retention defaults: what Prune keeps when its command leaves a field zero.
const (
	// DefaultKeepFinished is how many finished deployments (with their
	// plans) the state keeps; running and paused ones are always kept.
	DefaultKeepFinished = 100
	// SpentTokenGrace is how long a used or expired token stays recorded,
	// so that presenting it again says "used" or "expired" rather than
	// "no such token" for a while.
	SpentTokenGrace = 24 * time.Hour
)

// CmdPrune tags Prune in the log.
const CmdPrune CommandType = 12

// Prune bounds the replicated history: it keeps the newest KeepFinished
// finished deployments and drops older ones (never one that is running or
// paused, nor one that an unfinished rollback reverts, which are kept on
// top), and tokens used or expired
// more than SpentTokenGrace before At. Everything it decides comes from
// the command (its At, its KeepFinished), so every node drops the same
// records. Agents are not pruned: there is one record per host name,
// which revocation and re-enrollment checks need.
type Prune struct {
	KeepFinished int       `json:"keep_finished,omitempty"` // 0: DefaultKeepFinished
	At           time.Time `json:"at"`
}

func (Prune) commandType() CommandType { return CmdPrune }

func (s *State) prune(c *Prune) error {
	deps, tokens, err := s.prunable(c)
	if err != nil {
		return err
	}
	if len(deps) > 0 {
		kept := s.Order[:0:0]
		for _, id := range s.Order {
			if !deps[id] {
				kept = append(kept, id)
			}
		}
		s.Order = kept
		for id := range deps {
			delete(s.Deployments, id)
		}
	}
	for _, name := range tokens {
		delete(s.Tokens, name)
	}
	return nil
}

// prunable is what c drops from s: the rule, for prune and for the store's
// "nothing to drop" shortcut.
func (s *State) prunable(c *Prune) (deps map[string]bool, tokens []string, err error) {
	keep := c.KeepFinished
	if keep < 0 {
		return nil, nil, fmt.Errorf("%w: keep_finished %d", ErrBadCommand, keep)
	}
	if keep == 0 {
		keep = DefaultKeepFinished
	}
	needed := map[string]bool{}
	for _, d := range s.Deployments {
		if !d.State.Terminal() {
			needed[d.Of] = true
		}
	}
	finished := 0
	for id, d := range s.Deployments {
		if d.State.Terminal() && !needed[id] {
			finished++
		}
	}
	drop := finished - keep
	deps = map[string]bool{}
	for _, id := range s.Order {
		if drop <= 0 {
			break
		}
		if d := s.Deployments[id]; d.State.Terminal() && !needed[id] {
			deps[id] = true
			drop--
		}
	}
	for name, t := range s.Tokens {
		spent := t.Used && !t.UsedAt.IsZero() && !c.At.Before(t.UsedAt.Add(SpentTokenGrace))
		expired := !t.Expires.IsZero() && !c.At.Before(t.Expires.Add(SpentTokenGrace))
		if spent || expired {
			tokens = append(tokens, name)
		}
	}
	return deps, tokens, nil
}
