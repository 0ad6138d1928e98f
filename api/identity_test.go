package api

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/internal/pki/pkitest"
	"github.com/drover-dev/drover/internal/testhttp"
)

const joinBody = `{"id":"evil","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`

// do sends one request with cert, a bearer token (none when "") and extra
// headers, and returns the status and the error code of the answer.
func do(t *testing.T, p *testPKI, cert *tls.Certificate, method, url, token, body string, hdr map[string]string) (int, string) {
	t.Helper()
	status, b := testhttp.Do(t, p.httpClient(cert), method, url, token, body, hdr)
	var eb errorBody
	_ = json.Unmarshal([]byte(b), &eb)
	return status, eb.Code
}

// The forwarding headers give node rights only when a coordinator sends
// them, and only for a caller whose own certificate the cluster CA signed
// for a server: a forwarder's identity never stands in for its caller's.
func TestForwardedIdentity(t *testing.T) {
	p := newPKI(t)
	other := pkitest.New(t).Cert(t, "coord", pki.RoleServer) // another CA's server certificate
	b64 := func(c tls.Certificate) string { return base64.StdEncoding.EncodeToString(c.Leaf.Raw) }
	cases := []struct {
		name   string
		peer   *tls.Certificate
		token  string
		hdr    map[string]string
		status int
		code   string
	}{
		{"operator claims to forward a server", &p.client, "", map[string]string{HeaderForwardedBy: "n2", HeaderForwardedCert: b64(p.server)}, 401, "unauthorized"},
		{"operator claims to forward a server, made-up token", &p.client, "wrong-token", map[string]string{HeaderForwardedBy: "n2", HeaderForwardedCert: b64(p.server)}, 401, "unauthorized"},
		{"coordinator forwards without its caller's certificate", &p.server, "", map[string]string{HeaderForwardedBy: "n2"}, 401, "certificate_required"},
		{"coordinator forwards garbage", &p.server, "", map[string]string{HeaderForwardedBy: "n2", HeaderForwardedCert: "%%%"}, 401, "certificate_required"},
		{"coordinator forwards another CA's certificate", &p.server, "", map[string]string{HeaderForwardedBy: "n2", HeaderForwardedCert: b64(other)}, 401, "certificate_required"},
		{"coordinator forwards an operator, made-up token", &p.server, "wrong-token", map[string]string{HeaderForwardedBy: "n2", HeaderForwardedCert: b64(p.client)}, 401, "unauthorized"},
		{"coordinator forwards an operator, read token", &p.server, tokRead, map[string]string{HeaderForwardedBy: "n2", HeaderForwardedCert: b64(p.client)}, 403, "forbidden"},
		{"coordinator forwards an operator, manage token", &p.server, tokManage, map[string]string{HeaderForwardedBy: "n2", HeaderForwardedCert: b64(p.client)}, 204, ""},
		{"coordinator forwards a coordinator", &p.server, "", map[string]string{HeaderForwardedBy: "n2", HeaderForwardedCert: b64(p.server)}, 204, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore()
			lead := startNode(t, p, st, "n1", true)
			status, code := do(t, p, tc.peer, "POST", "https://"+lead.addr+"/v1/cluster/join", tc.token, joinBody, tc.hdr)
			if status != tc.status || code != tc.code {
				t.Fatalf("got %d %q, want %d %q", status, code, tc.status, tc.code)
			}
			want := 0
			if tc.status < 300 {
				want = 1
			}
			if got := st.writeCount(); got != want {
				t.Fatalf("%d writes reached the backend, want %d", got, want)
			}
		})
	}
}

// A revoked certificate is refused on every route, by the node that
// receives the request and by the leader when a follower has not applied
// the revocation yet.
func TestRevokedCertificateRefusedEverywhere(t *testing.T) {
	p := newPKI(t)
	routes := []struct{ method, path, token, body string }{
		{"GET", "/v1/status", "", ""},
		{"GET", "/metrics", "", ""},
		{"GET", "/v1/deployments", tokManage, ""},
		{"POST", "/v1/deployments", tokManage, `{"plan_name":"web","plan":"name: web"}`},
		{"POST", "/v1/cluster/join", tokManage, joinBody},
		{"GET", "/v1/artifacts/" + helloSHA, tokManage, ""},
		{"GET", "/v1/nope", tokManage, ""},
	}
	for _, where := range []string{"leader", "follower", "leader only"} {
		for _, rt := range routes {
			t.Run(where+"/"+rt.method+rt.path, func(t *testing.T) {
				st := newStore()
				st.artifacts[helloSHA] = []byte("hello")
				lead := startNode(t, p, st, "n1", true)
				fol := startNode(t, p, st, "n2", false)
				fol.setLeader(false, lead.addr)
				to := lead
				lead.revoke(p.agent.Leaf.Subject.CommonName)
				switch where {
				case "follower":
					to = fol
					fol.revoke(p.agent.Leaf.Subject.CommonName)
				case "leader only": // the follower has not applied it yet
					to = fol
				}
				status, code := do(t, p, &p.agent, rt.method, "https://"+to.addr+rt.path, rt.token, rt.body, nil)
				// Routes served on the follower itself are its own call.
				servedHere := where == "leader only" && (rt.path == "/v1/status" || rt.path == "/metrics" ||
					strings.HasPrefix(rt.path, "/v1/artifacts/") || rt.path == "/v1/nope")
				if servedHere {
					return
				}
				if status != http.StatusForbidden || code != codeForbidden {
					t.Fatalf("got %d %q, want 403 forbidden", status, code)
				}
				if n := st.writeCount(); n != 0 {
					t.Fatalf("%d writes reached the backend", n)
				}
			})
		}
	}
}

// Only a coordinator's own push may skip replication (finding 10).
func TestReplicaHeaderOnlyFromServers(t *testing.T) {
	p := newPKI(t)
	cases := []struct {
		name   string
		cert   *tls.Certificate
		token  string
		status int
		write  string
	}{
		{"operator, manage token", &p.client, tokManage, 403, ""},
		{"agent, manage token", &p.agent, tokManage, 403, ""},
		{"coordinator", &p.server, "", 204, "put " + helloSHA[:8] + " replica"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore()
			lead := startNode(t, p, st, "n1", true)
			status, _ := do(t, p, tc.cert, "PUT", "https://"+lead.addr+"/v1/artifacts/"+helloSHA, tc.token, "hello",
				map[string]string{HeaderReplica: "1"})
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			st.mu.Lock()
			writes := slices.Clone(st.writes)
			st.mu.Unlock()
			if tc.write == "" && len(writes) != 0 || tc.write != "" && !slices.Equal(writes, []string{tc.write}) {
				t.Fatalf("writes %q, want %q", writes, tc.write)
			}
		})
	}
}
