package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
)

// Archives of the newest deployments and of any unfinished one stay; the
// rest go, but never an upload in progress or a brand-new archive.
func TestPruneArtifacts(t *testing.T) {
	a := &artifacts{dir: t.TempDir()}
	sha := func(i int) string { s := sha256.Sum256([]byte(fmt.Sprint(i))); return hex.EncodeToString(s[:]) }
	old := time.Now().Add(-2 * time.Hour)
	var ds []deploy.Deployment
	for i := range 15 {
		p := filepath.Join(a.dir, sha(i)+".tar")
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, old, old)
		st := deploy.StateSucceeded
		if i == 1 {
			st = deploy.StatePaused // old but unfinished: kept
		}
		ds = append(ds, deploy.Deployment{ID: fmt.Sprint(i), ArtifactSHA256: sha(i), State: st})
	}
	fresh := filepath.Join(a.dir, sha(99)+".tar") // not yet referenced, just uploaded
	tmp := filepath.Join(a.dir, ".upload-123")
	for _, p := range []string{fresh, tmp} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n, err := a.prune(ds, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 { // 0, 2, 3, 4: finished and older than the 10 newest
		t.Fatalf("removed %d, want 4", n)
	}
	for i := range 15 {
		_, err := os.Stat(filepath.Join(a.dir, sha(i)+".tar"))
		gone := err != nil
		if want := i == 0 || (i >= 2 && i <= 4); gone != want {
			t.Errorf("archive of deployment %d: gone=%v, want %v", i, gone, want)
		}
	}
	for _, p := range []string{fresh, tmp} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed", filepath.Base(p))
		}
	}
}
