package coordinator

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/internal/testhttp"
	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/raftstore"
)

// TestRepeatedWritesThroughAFollower: a write sent twice with the same
// Idempotency-Key, through a follower (forwarded to the leader), is done
// once and its repeat answered as done, by real coordinators; another key
// is another request.
func TestRepeatedWritesThroughAFollower(t *testing.T) {
	tc := newTestCluster(t, "c1", "c2", "c3")
	ctx := context.Background()
	cl := tc.client(tc.token)
	tc.waitFormed(ctx, cl)
	follower := tc.follower()
	if _, err := cl.CreateToken(ctx, api.TokenRequest{Name: "ci", Role: raftstore.RoleRead}); err != nil {
		t.Fatal(err)
	}
	fc := tc.nodes[follower].c
	testwait.For(t, follower+" to know the leader and the new token", func() bool {
		for _, tk := range fc.store.Tokens() {
			if tk.Name == "ci" {
				return fc.LeaderHTTP() != ""
			}
		}
		return false
	})
	tlsCfg, err := pki.ClientConfig(pki.DirPaths(tc.tlsDir, "ops"))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer hc.CloseIdleConnections()
	send := func(method, path, body, key string) (int, string) {
		t.Helper()
		return testhttp.Do(t, hc, method, "https://"+tc.nodes[follower].cfg.HTTPAddr+path, tc.token, body,
			map[string]string{"Content-Type": "application/json", api.HeaderIdempotencyKey: key})
	}

	for i, want := range []int{http.StatusNoContent, http.StatusNoContent} {
		if code, body := send(http.MethodDelete, "/v1/tokens/ci", "", "delete-1"); code != want {
			t.Fatalf("delete %d: %d %s, want %d", i+1, code, body, want)
		}
	}
	if code, body := send(http.MethodDelete, "/v1/tokens/ci", "", "delete-2"); code != http.StatusNotFound {
		t.Fatalf("delete with another key: %d %s, want 404", code, body)
	}

	// A token's secret is in its first answer only: a repeat cannot give
	// it again, and says so.
	if code, body := send(http.MethodPost, "/v1/tokens", `{"name":"ci2","role":"read"}`, "create-1"); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	code, body := send(http.MethodPost, "/v1/tokens", `{"name":"ci2","role":"read"}`, "create-1")
	if code != http.StatusConflict || !strings.Contains(body, "earlier attempt of this request") {
		t.Fatalf("repeated create: %d %s, want 409 saying the first attempt created it", code, body)
	}
}
