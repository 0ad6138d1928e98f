package api

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

const helloSHA = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" // sha256("hello")

func TestAuthMatrix(t *testing.T) {
	p := newPKI(t)
	certs := map[string]*tls.Certificate{"none": nil, "client": &p.client, "server": &p.server, "agent": &p.agent}
	tokens := map[string]string{"": "", "wrong": "wrong-token", "read": tokRead, "manage": tokManage, "agent": tokAgent}

	submit := `{"plan_name":"web","plan":"name: web"}`
	cases := []struct {
		name         string
		cert, token  string
		method, path string
		body         string
		status       int
		code         string
		write        bool // the backend accepted a write
	}{
		{"no cert, manage token", "none", "manage", "POST", "/v1/deployments", submit, 401, "certificate_required", false},
		{"no cert, status", "none", "", "GET", "/v1/status", "", 401, "certificate_required", false},
		{"no cert, metrics", "none", "", "GET", "/metrics", "", 401, "certificate_required", false},
		{"no cert, join", "none", "", "POST", "/v1/cluster/join", `{"id":"n4","raft_addr":"a:1","http_addr":"a:2"}`, 401, "certificate_required", false},
		{"no cert, unknown route", "none", "", "GET", "/nope", "", 401, "certificate_required", false},
		{"no token, write", "client", "", "POST", "/v1/deployments", submit, 401, "unauthorized", false},
		{"no token, read", "client", "", "GET", "/v1/deployments", "", 401, "unauthorized", false},
		{"wrong token, write", "client", "wrong", "POST", "/v1/deployments", submit, 401, "unauthorized", false},
		{"wrong token, read", "client", "wrong", "GET", "/v1/deployments/d1", "", 401, "unauthorized", false},
		{"wrong token, events", "client", "wrong", "GET", "/v1/deployments/d1/events", "", 401, "unauthorized", false},
		{"read token, submit", "client", "read", "POST", "/v1/deployments", submit, 403, "forbidden", false},
		{"read token, pause", "client", "read", "POST", "/v1/deployments/d1/pause", "", 403, "forbidden", false},
		{"read token, rollback", "client", "read", "POST", "/v1/deployments/d1/rollback", "", 403, "forbidden", false},
		{"read token, repair", "client", "read", "POST", "/v1/repairs", `{"of":"d1"}`, 403, "forbidden", false},
		{"server cert, no token, repair", "server", "", "POST", "/v1/repairs", `{"of":"d1"}`, 401, "unauthorized", false},
		{"manage token, repair", "client", "manage", "POST", "/v1/repairs", `{"of":"d1"}`, 201, "", true},
		{"read token, create token", "client", "read", "POST", "/v1/tokens", `{"name":"x","role":"manage"}`, 403, "forbidden", false},
		{"read token, list tokens", "client", "read", "GET", "/v1/tokens", "", 403, "forbidden", false},
		{"read token, delete token", "client", "read", "DELETE", "/v1/tokens/ci", "", 403, "forbidden", false},
		{"read token, remove member", "client", "read", "DELETE", "/v1/cluster/members/n2", "", 403, "forbidden", false},
		{"read token, upload", "client", "read", "PUT", "/v1/artifacts/" + helloSHA, "hello", 403, "forbidden", false},
		{"read token, join", "client", "read", "POST", "/v1/cluster/join", `{"id":"n4","raft_addr":"a:1","http_addr":"a:2"}`, 403, "forbidden", false},
		{"read token, artifact", "client", "read", "HEAD", "/v1/artifacts/" + helloSHA, "", 403, "", false},
		{"read token, list", "client", "read", "GET", "/v1/deployments", "", 200, "", false},
		{"read token, events", "client", "read", "GET", "/v1/deployments/d1/events", "", 200, "", false},
		{"read token, members", "client", "read", "GET", "/v1/cluster/members", "", 200, "", false},
		{"agent token, read", "client", "agent", "GET", "/v1/deployments", "", 403, "forbidden", false},
		{"agent token, write", "client", "agent", "POST", "/v1/deployments", submit, 403, "forbidden", false},
		{"agent token, join", "client", "agent", "POST", "/v1/cluster/join", `{"id":"n4","raft_addr":"a:1","http_addr":"a:2"}`, 403, "forbidden", false},
		{"agent token, artifact", "client", "agent", "GET", "/v1/artifacts/" + helloSHA, "", 403, "forbidden", false},
		{"bad scheme", "client", "", "GET", "/v1/deployments", "", 401, "unauthorized", false},
		{"manage token, submit", "client", "manage", "POST", "/v1/deployments", submit, 201, "", true},
		{"manage token, pause", "client", "manage", "POST", "/v1/deployments/d1/pause", "", 204, "", true},
		{"manage token, rollback", "client", "manage", "POST", "/v1/deployments/d1/rollback", "", 201, "", true},
		{"manage token, create token", "client", "manage", "POST", "/v1/tokens", `{"name":"x","role":"read"}`, 201, "", true},
		{"manage token, list tokens", "client", "manage", "GET", "/v1/tokens", "", 200, "", false},
		{"manage token, delete token", "client", "manage", "DELETE", "/v1/tokens/ci", "", 204, "", true},
		{"manage token, remove member", "client", "manage", "DELETE", "/v1/cluster/members/n2", "", 204, "", true},
		{"manage token, backup", "client", "manage", "GET", "/v1/cluster/backup", "", 200, "", false},
		{"manage token, restore", "client", "manage", "POST", "/v1/cluster/restore", `{"deployments":{}}`, 204, "", true},
		{"read token, backup", "client", "read", "GET", "/v1/cluster/backup", "", 403, "forbidden", false},
		{"read token, restore", "client", "read", "POST", "/v1/cluster/restore", `{}`, 403, "forbidden", false},
		{"server cert, restore", "server", "", "POST", "/v1/cluster/restore", `{}`, 401, "unauthorized", false},
		{"manage token, join", "client", "manage", "POST", "/v1/cluster/join", `{"id":"n4","raft_addr":"a:1","http_addr":"a:2"}`, 204, "", true},
		{"manage token, upload", "client", "manage", "PUT", "/v1/artifacts/" + helloSHA, "hello", 204, "", true},
		{"manage token, artifact", "client", "manage", "GET", "/v1/artifacts/" + helloSHA, "", 200, "", false},
		{"client cert, status", "client", "", "GET", "/v1/status", "", 200, "", false},
		{"client cert, metrics", "client", "", "GET", "/metrics", "", 200, "", false},
		{"client cert, unknown route", "client", "manage", "GET", "/v1/nope", "", 404, "not_found", false},
		{"server cert, join", "server", "", "POST", "/v1/cluster/join", `{"id":"n4","raft_addr":"a:1","http_addr":"a:2"}`, 204, "", true},
		{"server cert, artifact head", "server", "", "HEAD", "/v1/artifacts/" + helloSHA, "", 200, "", false},
		{"server cert, artifact", "server", "", "GET", "/v1/artifacts/" + helloSHA, "", 200, "", false},
		{"server cert, upload", "server", "", "PUT", "/v1/artifacts/" + helloSHA, "hello", 204, "", true}, // peers push uploads
		{"server cert, read", "server", "", "GET", "/v1/deployments", "", 401, "unauthorized", false},
		{"server cert, submit", "server", "", "POST", "/v1/deployments", submit, 401, "unauthorized", false},
		{"agent cert, manage token", "agent", "manage", "GET", "/v1/deployments", "", 200, "", false},
		{"agent cert, join", "agent", "", "POST", "/v1/cluster/join", `{"id":"n4","raft_addr":"a:1","http_addr":"a:2"}`, 401, "unauthorized", false},
		// Finding 1 of issue 8: a follower that does not know a token sends
		// it on to the leader, which must judge the caller, not the
		// follower's server certificate.
		{"made-up token, join", "client", "wrong", "POST", "/v1/cluster/join", `{"id":"evil","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, 401, "unauthorized", false},
		{"made-up token, artifact", "client", "wrong", "GET", "/v1/artifacts/" + helloSHA, "", 401, "unauthorized", false},
		{"made-up token, artifact head", "client", "wrong", "HEAD", "/v1/artifacts/" + helloSHA, "", 401, "", false},
		{"made-up token, upload", "client", "wrong", "PUT", "/v1/artifacts/" + helloSHA, "hello", 401, "unauthorized", false},
		{"agent cert, made-up token, join", "agent", "wrong", "POST", "/v1/cluster/join", `{"id":"evil","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, 401, "unauthorized", false},
		{"server cert, made-up token, join", "server", "wrong", "POST", "/v1/cluster/join", `{"id":"n4","raft_addr":"a:1","http_addr":"a:2"}`, 204, "", true},
	}
	for _, target := range []string{"leader", "follower"} {
		for _, tc := range cases {
			t.Run(target+"/"+tc.name, func(t *testing.T) {
				st := newStore()
				st.addDeployment("d1")
				st.finish("d1", "succeeded") // the event stream ends at once
				st.artifacts[helloSHA] = []byte("hello")
				st.writes = nil
				lead := startNode(t, p, st, "n1", true)
				to := lead
				if target == "follower" {
					to = startNode(t, p, st, "n2", false)
					to.setLeader(false, lead.addr)
				}
				req, err := http.NewRequest(tc.method, "https://"+to.addr+tc.path, strings.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				if tok := tokens[tc.token]; tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				if tc.name == "bad scheme" {
					req.Header.Set("Authorization", "Basic "+tokManage)
				}
				resp, err := p.httpClient(certs[tc.cert]).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
				}
				if tc.code != "" {
					var eb errorBody
					if err := json.Unmarshal(body, &eb); err != nil || eb.Code != tc.code {
						t.Fatalf("body %s, want code %q", body, tc.code)
					}
				}
				wantWrites := 0
				if tc.write {
					wantWrites = 1
				}
				if got := st.writeCount(); got != wantWrites {
					t.Fatalf("%d writes reached the backend, want %d", got, wantWrites)
				}
				// An unknown token is checked again by the leader (the
				// follower may not have applied a brand-new token yet),
				// which refuses it too; every other refusal stays local.
				leaderChecks := tc.status == 401 && tc.code != "certificate_required" && tokens[tc.token] != "" && tc.name != "bad scheme"
				if target == "follower" && tc.status >= 400 && len(lead.requests()) > 0 && !leaderChecks {
					t.Fatalf("a refused request reached the leader: %+v", lead.requests())
				}
			})
		}
	}
}
