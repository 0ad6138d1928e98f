package raftstore

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/drover-dev/drover/deploy"
)

// MaxBackupBytes bounds a backup given to Restore: far above a real state
// (history is bounded, see Retention), far below what would exhaust a
// node's memory.
const MaxBackupBytes = 256 << 20

// backupLimit is MaxBackupBytes; tests lower it.
var backupLimit int64 = MaxBackupBytes

var legalRoles = map[TokenRole]bool{RoleManage: true, RoleRead: true, RoleAgentJoin: true}

// validate checks everything apply takes for granted. It returns every
// problem found, each naming the record, wrapped in deploy.ErrInconsistent.
func (s *State) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	errs = append(errs, s.Ledger.Problems()...)
	for _, name := range slices.Sorted(maps.Keys(s.Tokens)) {
		if t := s.Tokens[name]; t == nil || t.Name != name || t.Hash == "" || !legalRoles[t.Role] {
			bad("token %s: empty, misnamed, without a hash or of an unknown role", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Agents)) {
		if a := s.Agents[name]; a == nil || a.Name != name {
			bad("agent %s: empty or misnamed", name)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.Nodes)) {
		if n := s.Nodes[id]; n == nil || n.ID != id {
			bad("node %s: empty or misnamed", id)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	const most = 10
	if len(errs) > most {
		errs = append(errs[:most], fmt.Errorf("and %d more problems", len(errs)-most))
	}
	return fmt.Errorf("%w:\n%w", deploy.ErrInconsistent, errors.Join(errs...))
}
