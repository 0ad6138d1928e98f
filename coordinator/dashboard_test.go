package coordinator

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/raftstore"
)

// A browser without a client certificate signs in to the dashboard with a
// read token and reads; the same cookie opens nothing under /v1/, an
// agent-join token does not sign in, and --no-dashboard serves none of it.
func TestDashboardSignIn(t *testing.T) {
	tests := []struct {
		name string
		off  bool
	}{{"served", false}, {"no-dashboard", true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClusterWith(t, func(cfg *Config) { cfg.NoDashboard = tc.off }, "n1")
			ctx := context.Background()
			cl := c.client(c.token, "n1")
			c.waitFormed(ctx, cl)
			read, err := cl.CreateToken(ctx, api.TokenRequest{Name: "dash", Role: raftstore.RoleRead})
			if err != nil {
				t.Fatal(err)
			}
			join, err := cl.CreateToken(ctx, api.TokenRequest{Name: "j", Role: raftstore.RoleAgentJoin, Agent: "a1"})
			if err != nil {
				t.Fatal(err)
			}
			base := "https://" + c.nodes["n1"].cfg.HTTPAddr
			browser := c.httpAs(false) // no client certificate
			login := func(token string) (int, string) {
				req, _ := http.NewRequest(http.MethodPost, base+"/ui/login", strings.NewReader(`{"token":"`+token+`"}`))
				req.Header.Set("Content-Type", "application/json")
				resp, err := browser.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				for _, ck := range resp.Cookies() {
					if ck.Name == "drover_ui" {
						return resp.StatusCode, ck.Value
					}
				}
				return resp.StatusCode, ""
			}
			withCookie := func(path, cookie string) int {
				req, _ := http.NewRequest(http.MethodGet, base+path, nil)
				req.AddCookie(&http.Cookie{Name: "drover_ui", Value: cookie})
				resp, err := browser.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if tc.off {
				if code, _ := login(read.Token); code == http.StatusNoContent {
					t.Fatalf("--no-dashboard: sign-in answered %d", code)
				}
				if code := withCookie("/ui/api/deployments", read.Token); code != http.StatusUnauthorized {
					t.Fatalf("--no-dashboard: /ui/api/deployments answered %d, want the API's 401 (no certificate)", code)
				}
				return
			}
			if code, ck := login(join.Token); code != http.StatusUnauthorized || ck != "" {
				t.Errorf("an agent-join token signed in: %d, cookie %q", code, ck)
			}
			code, ck := login(read.Token)
			if code != http.StatusNoContent || ck == "" {
				t.Fatalf("read token: %d, cookie %q", code, ck)
			}
			for path, want := range map[string]int{
				"/ui/api/deployments": http.StatusOK,
				"/ui/api/members":     http.StatusOK,
				"/ui/api/node":        http.StatusOK,
				"/v1/deployments":     http.StatusUnauthorized, // the API still wants a certificate
			} {
				if got := withCookie(path, ck); got != want {
					t.Errorf("GET %s with the cookie: %d, want %d", path, got, want)
				}
			}
			if err := cl.DeleteToken(ctx, "dash"); err != nil {
				t.Fatal(err)
			}
			if got := withCookie("/ui/api/deployments", ck); got != http.StatusUnauthorized {
				t.Errorf("after the token is revoked: %d, want 401", got)
			}
		})
	}
}
