package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/deploy"
)

// ErrNoArtifact means no coordinator has the archive.
var ErrNoArtifact = errors.New("artifact not found on any coordinator")

var shaRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// artifacts keeps release archives by SHA-256 in DATA/artifacts. Raft
// carries only the digest: archives are too big for the log. The node that
// receives an upload pushes it to its peers before answering, so that any
// node that later leads finds it locally; one that does not fetches it from
// a peer and checks the digest.
type artifacts struct {
	dir   string
	peers func() []string // other coordinators' API addresses
	http  *http.Client    // mutual TLS with this node's certificate

	mu sync.Mutex // serialises fetches of one node
}

func (a *artifacts) path(sha string) string { return filepath.Join(a.dir, sha+".tar") }

func (a *artifacts) Has(sha string) bool {
	if !shaRE.MatchString(sha) {
		return false
	}
	_, err := os.Stat(a.path(sha))
	return err == nil
}

// Put stores r under sha after checking its digest, then pushes it to the
// peers (unless it came from one: the API layer marks those, from a
// server certificate only).
func (a *artifacts) Put(ctx context.Context, sha string, r io.Reader) error {
	if err := a.store(sha, r); err != nil {
		return err
	}
	if api.IsReplica(ctx) {
		return nil
	}
	return a.push(ctx, sha)
}

func (a *artifacts) store(sha string, r io.Reader) error {
	if !shaRE.MatchString(sha) {
		return fmt.Errorf("artifact digest %q: want 64 hex digits: %w", sha, api.ErrDigest)
	}
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return fmt.Errorf("artifact store: %w", err)
	}
	f, err := os.CreateTemp(a.dir, ".upload-*")
	if err != nil {
		return fmt.Errorf("artifact store: %w", err)
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store artifact %s: %w", sha[:12], err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return fmt.Errorf("artifact digest is %s, not %s: %w", got, sha, api.ErrDigest)
	}
	if err := os.Rename(f.Name(), a.path(sha)); err != nil {
		return fmt.Errorf("store artifact %s: %w", sha[:12], err)
	}
	return nil
}

// push sends the archive to every peer at once. It fails only when no peer
// took it in a cluster that has peers: one copy is not enough to survive
// the loss of this node.
func (a *artifacts) push(ctx context.Context, sha string) error {
	peers := a.peers()
	if len(peers) == 0 {
		return nil
	}
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a.pushTo(ctx, p, sha)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	if ok == 0 {
		return fmt.Errorf("replicate artifact %s to the other coordinators: %w", sha[:12], errors.Join(errs...))
	}
	return nil
}

func (a *artifacts) pushTo(ctx context.Context, peer, sha string) error {
	f, err := os.Open(a.path(sha))
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "https://"+peer+"/v1/artifacts/"+sha, f)
	if err != nil {
		return err
	}
	req.Header.Set(api.HeaderReplica, "1")
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("push to %s: %w", peer, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("push to %s: %s", peer, resp.Status)
	}
	return nil
}

func (a *artifacts) Open(sha string) (io.ReadCloser, int64, error) {
	if !shaRE.MatchString(sha) {
		return nil, 0, fmt.Errorf("artifact %q: %w", sha, ErrNoArtifact)
	}
	f, err := os.Open(a.path(sha))
	if err != nil {
		return nil, 0, fmt.Errorf("artifact %s: %w", sha[:12], ErrNoArtifact)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// Path returns the local file of sha, fetching it from a peer first if
// this node lacks it (a leader that never received the upload).
func (a *artifacts) Path(ctx context.Context, sha string) (string, error) {
	if a.Has(sha) {
		return a.path(sha), nil
	}
	if !shaRE.MatchString(sha) {
		return "", fmt.Errorf("artifact digest %q: %w", sha, api.ErrDigest)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Has(sha) {
		return a.path(sha), nil
	}
	var errs []error
	for _, p := range a.peers() {
		err := a.fetch(ctx, p, sha)
		if err == nil {
			return a.path(sha), nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("artifact %s: %w (%v)", sha[:12], ErrNoArtifact, errors.Join(errs...))
}

func (a *artifacts) fetch(ctx context.Context, peer, sha string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+peer+"/v1/artifacts/"+sha, nil)
	if err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("fetch from %s: %w", peer, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch from %s: %s", peer, resp.Status)
	}
	return a.store(sha, resp.Body)
}

// keepArtifacts is how many of the newest deployments keep their archive
// on every coordinator (operators' rollbacks and resumes need them); older
// archives are deleted.
const keepArtifacts = 10

// prune deletes archives that no deployment needs any more: neither one
// of the keepArtifacts newest deployments nor any that has not ended.
// Uploads in progress (temp files) are left alone, and so are archives
// younger than grace, which may belong to a deployment being submitted.
func (a *artifacts) prune(ds []deploy.Deployment, grace time.Duration) (removed int, err error) {
	keep := map[string]bool{}
	for i, d := range ds {
		if d.ArtifactSHA256 != "" && (!d.State.Terminal() || i >= len(ds)-keepArtifacts) {
			keep[d.ArtifactSHA256] = true
		}
	}
	entries, err := os.ReadDir(a.dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	for _, e := range entries {
		sha, ok := strings.CutSuffix(e.Name(), ".tar")
		if !ok || !shaRE.MatchString(sha) || keep[sha] {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < grace {
			continue
		}
		if err := os.Remove(filepath.Join(a.dir, e.Name())); err == nil {
			removed++
		}
	}
	return removed, nil
}
