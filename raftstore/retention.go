package raftstore

import (
	"time"

	"github.com/drover-dev/drover/deploy"
)

// SpentTokenGrace is how long a used or expired token stays recorded, so
// that presenting it again says "used" or "expired" rather than "no such
// token" for a while. deploy.Prune drops tokens spent longer ago than that
// (the ledger prunes its deployments on the same command). Agents are not
// pruned: there is one record per host name, which revocation and
// re-enrollment checks need.
const SpentTokenGrace = 24 * time.Hour

// prune applies c: the ledger drops its deployments, then the store its
// spent tokens.
func (s *State) prune(c *deploy.Prune) error {
	if err := s.Ledger.Apply(c); err != nil {
		return err
	}
	for _, name := range s.prunableTokens(c) {
		delete(s.Tokens, name)
	}
	return nil
}

// prunableTokens are the tokens c drops: the rule, for prune and for the
// store's "nothing to drop" shortcut.
func (s *State) prunableTokens(c *deploy.Prune) []string {
	var tokens []string
	for name, t := range s.Tokens {
		spent := t.Used && !t.UsedAt.IsZero() && !c.At.Before(t.UsedAt.Add(SpentTokenGrace))
		expired := !t.Expires.IsZero() && !c.At.Before(t.Expires.Add(SpentTokenGrace))
		if spent || expired {
			tokens = append(tokens, name)
		}
	}
	return tokens
}

// nothingToPrune reports whether c would drop nothing from s (a bad c is
// left for Apply to refuse).
func (s *State) nothingToPrune(c *deploy.Prune) bool {
	deps, err := s.Ledger.Prunable(c)
	return err == nil && len(deps) == 0 && len(s.prunableTokens(c)) == 0
}
