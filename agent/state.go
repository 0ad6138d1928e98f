package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/atomicfile"
	"github.com/drover-dev/drover/transport/agent/wire"
)

// termStore is the fencing term: the highest Raft term under which the
// agent accepted an action. It only grows.
type termStore struct {
	path string
	mu   sync.Mutex
	max  uint64
}

// loadTerm reads the term file. A missing file is term 0 (a new agent); a
// corrupt one is an error rather than 0, because silently forgetting the
// term would let a deposed leader act again.
func loadTerm(path string) (*termStore, error) {
	t := &termStore{path: path}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return t, nil
	} else if err != nil {
		return nil, fmt.Errorf("read fencing term: %w", err)
	}
	t.max, err = strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("read fencing term %s: not a number (the file is corrupt; restore it, or remove it only if no deposed coordinator can still act)", path)
	}
	return t, nil
}

// current returns the highest term accepted.
func (t *termStore) current() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.max
}

// admit decides whether an action of the given term may run. A newer term
// is persisted before admit returns, so the action never runs unless a
// restart would still remember its term.
func (t *termStore) admit(term uint64) (max uint64, ok bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if term < t.max {
		return t.max, false, nil
	}
	if term > t.max {
		if err := atomicfile.Write(t.path, []byte(strconv.FormatUint(term, 10)+"\n"), secretMode); err != nil {
			return t.max, false, fmt.Errorf("persist fencing term %d: %w", term, err)
		}
		t.max = term
	}
	return t.max, true, nil
}

// journal records the actions in progress, one file each, so that a
// restart finds what it interrupted.
type journal struct{ dir string }

// journalEntry is what a journal file holds: enough to tell an operator
// what was interrupted.
type journalEntry struct {
	ID      string    `json:"id"`
	Term    uint64    `json:"term"`
	Kind    wire.Kind `json:"kind"`
	Command string    `json:"command,omitempty"`
	Path    string    `json:"path,omitempty"`
	Started time.Time `json:"started"`
}

// fileName maps an action ID to a file name. IDs made of safe characters
// are used as they are (journal/<id>, readable by an operator); any other
// ID (a slash, "..") is hashed behind a '~', which no safe ID contains, so
// an ID can never name a file outside the journal. The ID itself is read
// back from the entry.
func (j journal) fileName(id string) string {
	safe := id != "" && len(id) <= 128 && id[0] != '.'
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			safe = false
			break
		}
	}
	if safe {
		return filepath.Join(j.dir, id)
	}
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(j.dir, "~"+hex.EncodeToString(sum[:16]))
}

// add writes a's entry durably. The action must not run when it fails.
func (j journal) add(a *wire.Action) error {
	e := journalEntry{ID: a.ID, Term: a.Term, Kind: a.Kind, Command: a.Command, Path: a.Path, Started: time.Now().UTC()}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(j.fileName(a.ID), data, secretMode); err != nil {
		return fmt.Errorf("journal action %s: %w", a.ID, err)
	}
	return nil
}

// remove deletes id's entry: the action's result has been delivered.
func (j journal) remove(id string) error {
	err := os.Remove(j.fileName(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// journalFile is an entry found in the journal.
type journalFile struct{ id, path string }

// list returns the entries left, sorted by ID. An entry that cannot be
// read (it should not happen: entries are written atomically) is returned
// under its file name, so that it is still reported lost rather than
// forgotten.
func (j journal) list() ([]journalFile, error) {
	des, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	var out []journalFile
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") || !de.Type().IsRegular() {
			continue // a temp file of an interrupted write: the action never ran
		}
		p := filepath.Join(j.dir, name)
		var e journalEntry
		data, err := os.ReadFile(p)
		if err == nil {
			err = json.Unmarshal(data, &e)
		}
		if err != nil || e.ID == "" || j.fileName(e.ID) != p {
			e.ID = name
		}
		out = append(out, journalFile{id: e.ID, path: p})
	}
	slices.SortFunc(out, func(a, b journalFile) int { return strings.Compare(a.id, b.id) })
	return out, nil
}

// cleanTemps removes temp files of writes interrupted by a crash.
func (j journal) cleanTemps() {
	des, _ := os.ReadDir(j.dir)
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") {
			os.Remove(filepath.Join(j.dir, de.Name()))
		}
	}
}
