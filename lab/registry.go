package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/drover-dev/drover/internal/atomicfile"
)

// RegistryDir holds one <ID>.json per lab on this machine. It is written
// before the lab creates anything and removed last, so a lab namespace
// without a registry entry is always an orphan.
const RegistryDir = "/run/drover-lab"

// record is what a later process needs to find and remove a lab: it lives in
// RegistryDir/<ID>.json and, identical, in <Dir>/lab.json.
type record struct {
	ID         string    `json:"id"`
	Dir        string    `json:"dir"`
	RemoveDir  bool      `json:"remove_dir"` // the lab created Dir, so Down removes it
	OwnerPID   int       `json:"owner_pid"`  // 0: detached, removed only by an explicit Destroy
	OwnerStart uint64    `json:"owner_start"`
	Namespaces []string  `json:"namespaces"`
	Created    time.Time `json:"created"`
}

const labFile = "lab.json"

func registryPath(id string) string { return filepath.Join(RegistryDir, id+".json") }

func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}

// save writes the record to the registry and the lab dir.
func (r *record) save() error {
	if err := os.MkdirAll(RegistryDir, 0o700); err != nil {
		return err
	}
	if err := writeJSONAtomic(registryPath(r.ID), r); err != nil {
		return err
	}
	return writeJSONAtomic(filepath.Join(r.Dir, labFile), r)
}

func readRecord(id string) (*record, error) {
	b, err := os.ReadFile(registryPath(id))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", registryPath(id), err)
	}
	if r.ID != id {
		return nil, fmt.Errorf("%s: holds lab %q", registryPath(id), r.ID)
	}
	return &r, nil
}

// ownerAlive reports whether the lab is still wanted: a detached lab always
// is; otherwise its owner process must run (same PID and start time).
func (r *record) ownerAlive() bool {
	return r.OwnerPID == 0 || sameProcessAlive(r.OwnerPID, r.OwnerStart)
}

// teardown kills everything in the lab's namespaces, deletes them, removes
// the lab dir (only when the lab created it and it still holds this lab's
// lab.json) and finally the registry entry. Missing pieces are not errors.
func teardown(ctx context.Context, id string, r *record) error {
	var errs []error
	names, err := labNamespaces(ctx, id)
	if err != nil {
		errs = append(errs, err)
	}
	if r != nil {
		names = union(names, r.Namespaces)
	}
	if err := destroyNamespaces(ctx, names); err != nil {
		errs = append(errs, err)
	}
	if r != nil && r.RemoveDir && r.Dir != "" && ownsDir(r.Dir, id) {
		if err := os.RemoveAll(r.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(registryPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ownsDir guards RemoveAll: dir must hold lab.json naming lab id.
func ownsDir(dir, id string) bool {
	b, err := os.ReadFile(filepath.Join(dir, labFile))
	if err != nil {
		return false
	}
	var r record
	return json.Unmarshal(b, &r) == nil && r.ID == id
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// lockRegistry serializes stale cleanups between processes.
func lockRegistry() (unlock func(), err error) {
	if err := os.MkdirAll(RegistryDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(RegistryDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// knownIDs returns every lab ID seen in the registry or in namespace names.
func knownIDs(ctx context.Context) ([]string, error) {
	ids := map[string]bool{}
	entries, err := os.ReadDir(RegistryDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && nsID(nsName(id, "x")) == id {
			ids[id] = true
		}
	}
	names, err := listNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if id := nsID(n); id != "" {
			ids[id] = true
		}
	}
	out := make([]string, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

// CleanStale removes every lab whose owner process is gone (and lab
// namespaces nobody registered): it kills the processes inside, deletes the
// namespaces, the lab dirs and the registry entries. Detached labs (see
// Lab.Detach) and labs whose owner still runs are left alone. It returns the
// IDs removed.
func CleanStale(ctx context.Context, log io.Writer) ([]string, error) {
	return clean(ctx, log, false)
}

// DestroyAll removes every lab on the machine, running or not.
func DestroyAll(ctx context.Context, log io.Writer) ([]string, error) {
	return clean(ctx, log, true)
}

func clean(ctx context.Context, log io.Writer, all bool) ([]string, error) {
	unlock, err := lockRegistry()
	if err != nil {
		return nil, err
	}
	defer unlock()
	ids, err := knownIDs(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, id := range ids {
		r, err := readRecord(id)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		if r != nil && !all && r.ownerAlive() {
			continue
		}
		if log != nil {
			if r != nil {
				fmt.Fprintf(log, "lab: removing lab %s (owner pid %d gone, dir %s)\n", id, r.OwnerPID, r.Dir)
			} else {
				fmt.Fprintf(log, "lab: removing unregistered lab namespaces drl%s-*\n", id)
			}
		}
		if err := teardown(ctx, id, r); err != nil {
			errs = append(errs, fmt.Errorf("lab %s: %w", id, err))
			continue
		}
		removed = append(removed, id)
	}
	return removed, errors.Join(errs...)
}

// Destroy removes the lab with the given ID whoever owns it (the
// `drover-lab down ID` command).
func Destroy(ctx context.Context, id string) error {
	if nsID(nsName(id, "x")) != id {
		return fmt.Errorf("lab: %q is not a lab ID", id)
	}
	r, err := readRecord(id)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	names, err := labNamespaces(ctx, id)
	if err != nil {
		return err
	}
	if r == nil && len(names) == 0 {
		return fmt.Errorf("lab %s: no such lab", id)
	}
	return teardown(ctx, id, r)
}
