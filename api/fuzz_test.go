package api

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/internal/pki/pkitest"
)

// fuzzRoutes are the routes that decode a request body.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/v1/cluster/join"},
	{"POST", "/v1/deployments"},
	{"POST", "/v1/tokens"},
	{"POST", "/v1/deployments/d1/pause"},
	{"PUT", "/v1/artifacts/" + helloSHA},
	{"POST", "/v1/cluster/restore"},
	{"DELETE", "/v1/tokens/ci"},
}

// FuzzRequest sends arbitrary bodies, tokens and forwarded identities to
// the handlers, in-process, as a coordinator forwarding for its caller.
// Whatever comes, the server answers (no panic, no 5xx from decoding),
// and nothing is written unless the forwarded identity is a real
// certificate of the cluster CA (rule 8 of DESIGN.md: no request without
// a valid identity of its own changes anything).
func FuzzRequest(f *testing.F) {
	ca := pkitest.New(f)
	server := ca.Cert(f, "coord", pki.RoleServer)
	client := ca.Cert(f, "operator", pki.RoleClient)
	valid := map[string]bool{
		base64.StdEncoding.EncodeToString(server.Leaf.Raw): true,
		base64.StdEncoding.EncodeToString(client.Leaf.Raw): true,
	}
	clientB64 := base64.StdEncoding.EncodeToString(client.Leaf.Raw)
	f.Add(uint8(0), []byte(`{"id":"n4","raft_addr":"a:1","http_addr":"a:2"}`), tokManage, clientB64)
	f.Add(uint8(0), []byte(`{"id":"evil","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`), "not-a-real-token", "")
	f.Add(uint8(1), []byte(`{"plan_name":"web","plan":"name: web","artifact_sha256":"`+helloSHA+`"}`), tokManage, clientB64)
	f.Add(uint8(2), []byte(`{"name":"x","role":"agent-join","agent":"web1","ttl":"5m"}`), tokManage, clientB64)
	f.Add(uint8(2), []byte(`{"name":"x","role":"read","ttl":"-5m"}`), tokRead, clientB64)
	f.Add(uint8(4), []byte("hello"), tokManage, clientB64)
	f.Add(uint8(5), []byte(`{"deployments":{}}`), tokManage, "MIIB")
	f.Add(uint8(6), []byte(nil), tokAgent, base64.StdEncoding.EncodeToString([]byte("not a certificate")))
	f.Fuzz(func(t *testing.T, route uint8, body []byte, token, fwd string) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		st := newStore()
		st.addDeployment("d1")
		st.writes = nil
		n := &fakeNode{st: st, id: "n1", leader: true}
		h := NewServer(Config{Node: n, Cluster: n, Deployments: n, Artifacts: n, Auth: n, Certs: n, NodeID: "n1",
			Log: slog.New(slog.DiscardHandler)})
		r := httptest.NewRequest(rt.method, "https://n1"+rt.path, bytes.NewReader(body))
		r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{server.Leaf, ca.CA.Cert}}}
		r.Header.Set(HeaderForwardedBy, "n2")
		r.Header.Set(HeaderForwardedCert, fwd)
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code < 200 || w.Code >= 600 || w.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s: status %d: %s", rt.method, rt.path, w.Code, w.Body)
		}
		if !valid[fwd] && (w.Code < 400 || st.writeCount() != 0) {
			t.Fatalf("%s %s with a forwarded identity that is no certificate of the CA: status %d, %d writes",
				rt.method, rt.path, w.Code, st.writeCount())
		}
	})
}
