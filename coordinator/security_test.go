package coordinator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/internal/testhttp"
	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/transport/agent/wire"
)

// httpAs is an HTTPS client presenting the operator's certificate, or none
// (an agent that has not enrolled yet).
func (tc *testCluster) httpAs(withCert bool) *http.Client {
	tc.t.Helper()
	paths := pki.Paths{CA: pki.DirPaths(tc.tlsDir, "ops").CA}
	if withCert {
		paths = pki.DirPaths(tc.tlsDir, "ops")
	}
	cfg, err := pki.ClientConfig(paths)
	if err != nil {
		tc.t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

// enroll presents token for name with a fresh key, as an agent does.
func (tc *testCluster) enroll(id, name, token string) (int, string) {
	tc.t.Helper()
	status, body, _ := tc.enrollKey(id, name, token)
	return status, body
}

// enrollKey is enroll, returning the agent's key too.
func (tc *testCluster) enrollKey(id, name, token string) (int, string, *ecdsa.PrivateKey) {
	tc.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tc.t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		tc.t.Fatal(err)
	}
	body, _ := json.Marshal(wire.EnrollRequest{Name: name, Token: token, PublicKey: pub})
	status, out := testhttp.Do(tc.t, tc.httpAs(false), "POST", "https://"+tc.nodes[id].cfg.HTTPAddr+wire.EnrollPath, "", string(body), nil)
	return status, out, key
}

// agentClient presents the certificate an enrollment answered with.
func (tc *testCluster) agentClient(enrollAnswer string, key *ecdsa.PrivateKey) *http.Client {
	tc.t.Helper()
	var er wire.EnrollResponse
	if err := json.Unmarshal([]byte(enrollAnswer), &er); err != nil {
		tc.t.Fatal(err)
	}
	leaf, err := pki.ParseCertPEM(er.Certificate)
	if err != nil {
		tc.t.Fatal(err)
	}
	hc := tc.httpAs(false)
	cfg := hc.Transport.(*http.Transport).TLSClientConfig
	cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}}
	return hc
}

// joinToken creates an agent-join token through the API, in JSON as any
// client sends it.
func (tc *testCluster) joinToken(id, label, agent string, replace bool) string {
	tc.t.Helper()
	body := fmt.Sprintf(`{"name":%q,"role":"agent-join","ttl":"5m","agent":%q,"replace":%v}`, label, agent, replace)
	status, out := testhttp.Do(tc.t, tc.httpAs(true), "POST", "https://"+tc.nodes[id].cfg.HTTPAddr+"/v1/tokens", tc.token, body, nil)
	if status != http.StatusCreated {
		tc.t.Fatalf("create join token for %s: %d %s", agent, status, out)
	}
	var tr struct{ Token string }
	if err := json.Unmarshal([]byte(out), &tr); err != nil {
		tc.t.Fatal(err)
	}
	return tr.Token
}

// Issue 8, finding 3: made-up join tokens are refused from local state,
// without a Raft write, and each source address gets a bounded number of
// attempts.
func TestBogusEnrollmentsWriteNothing(t *testing.T) {
	tc := newTestCluster(t, "c1")
	c := tc.nodes["c1"].c
	testwait.For(t, "the bootstrap token applied", c.hasManageToken)
	before := c.Status().AppliedIndex
	refused, limited := 0, 0
	for i := range 50 {
		status, body := tc.enroll("c1", "web1", fmt.Sprintf("drv_made-up-%d", i))
		switch status {
		case http.StatusForbidden:
			refused++
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("attempt %d: %d %s, want 403 or 429", i, status, body)
		}
	}
	if after := c.Status().AppliedIndex; after != before {
		t.Errorf("50 enrollments with made-up tokens moved the applied index from %d to %d", before, after)
	}
	if limited == 0 {
		t.Errorf("50 attempts from one address in a row: none was rate-limited (%d refused)", refused)
	}
}

// Issue 8, finding 2: a join token enrolls only the agent it was made for,
// and an enrolled or revoked name only with --replace.
func TestJoinTokenBoundToAgentName(t *testing.T) {
	tc := newTestCluster(t, "c1")
	testwait.For(t, "the bootstrap token applied", tc.nodes["c1"].c.hasManageToken)
	ctx := t.Context()
	cl := tc.client(tc.token)
	for9 := tc.joinToken("c1", "for-web9", "web9", false)
	if status, body := tc.enroll("c1", "web1", for9); status != http.StatusForbidden || !strings.Contains(body, "web9") {
		t.Fatalf("web9's token presented for web1: %d %s, want 403 naming web9", status, body)
	}
	status, body, key := tc.enrollKey("c1", "web9", for9)
	if status != http.StatusOK {
		t.Fatalf("web9's token for web9: %d %s", status, body)
	}
	// Finding 1: a revoked agent certificate is refused on the API too.
	web9 := tc.agentClient(body, key)
	statusURL := "https://" + tc.nodes["c1"].cfg.HTTPAddr + "/v1/status"
	if status, body := testhttp.Do(t, web9, "GET", statusURL, "", "", nil); status != http.StatusOK {
		t.Fatalf("web9's certificate on /v1/status: %d %s", status, body)
	}
	if err := cl.RevokeAgent(ctx, "web9"); err != nil {
		t.Fatal(err)
	}
	if status, body := testhttp.Do(t, web9, "GET", statusURL, "", "", nil); status != http.StatusForbidden {
		t.Fatalf("revoked web9's certificate on /v1/status: %d %s, want 403", status, body)
	}
	again := tc.joinToken("c1", "web9-again", "web9", false)
	if status, body := tc.enroll("c1", "web9", again); status != http.StatusForbidden || !strings.Contains(body, "--replace") {
		t.Fatalf("revoked web9 enrolling again without --replace: %d %s, want 403 pointing at --replace", status, body)
	}
	replace := tc.joinToken("c1", "web9-replace", "web9", true)
	if status, body := tc.enroll("c1", "web9", replace); status != http.StatusOK {
		t.Fatalf("web9 with a --replace token: %d %s", status, body)
	}
	status, body = testhttp.Do(t, tc.httpAs(true), "POST", "https://"+tc.nodes["c1"].cfg.HTTPAddr+"/v1/tokens", tc.token,
		`{"name":"unbound","role":"agent-join","ttl":"5m"}`, nil)
	if status != http.StatusBadRequest {
		t.Fatalf("a join token without an agent name: %d %s, want 400", status, body)
	}
}

// Issue 8, finding 10: an operator's upload cannot skip replication by
// claiming to be a coordinator's push.
func TestReplicaHeaderFromOperatorRefused(t *testing.T) {
	tc := newTestCluster(t, "c1", "c2")
	testwait.For(t, "two members", func() bool { return len(tc.nodes["c1"].c.peerAddrs()) == 1 })
	data := []byte("release archive")
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	status, body := testhttp.Do(t, tc.httpAs(true), "PUT", "https://"+tc.nodes["c1"].cfg.HTTPAddr+"/v1/artifacts/"+sha, tc.token, string(data),
		map[string]string{"X-Drover-Replica": "1"})
	if status/100 == 2 && !tc.nodes["c2"].c.arts.Has(sha) {
		t.Fatalf("an operator's upload marked as a replica was accepted (%d) and not pushed to c2", status)
	}
	if status != http.StatusForbidden {
		t.Fatalf("upload with X-Drover-Replica and a manage token: %d %s, want 403", status, body)
	}
}

// dialer opens TLS connections to node id without a client certificate,
// closed when the test ends.
func (tc *testCluster) dialer(id string) func(t *testing.T) *tls.Conn {
	caOnly, err := pki.ClientConfig(pki.Paths{CA: pki.DirPaths(tc.tlsDir, "ops").CA})
	if err != nil {
		tc.t.Fatal(err)
	}
	addr := tc.nodes[id].cfg.HTTPAddr
	return func(t *testing.T) *tls.Conn {
		t.Helper()
		c, err := tls.Dial("tcp", addr, caOnly)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
}

// Issue 8, finding 5: a client that trickles its request, stops halfway
// through its headers, or leaves a keep-alive connection idle is cut off.
// (The limits are shortened here; the defaults are in DefaultLimits.)
func TestSlowClientsAreCutOff(t *testing.T) {
	// Long enough that a loaded machine still writes the request before
	// the header timeout runs out.
	lim := Limits{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second}
	tc := newTestClusterWith(t, func(c *Config) { c.Limits = lim }, "c1")
	dial := tc.dialer("c1")
	// closedByServer reads until the server closes the connection; the
	// read deadline only guards the test against hanging forever.
	closedByServer := func(t *testing.T, c net.Conn) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the server kept the connection open")
		}
	}
	cases := []struct {
		name string
		send string
	}{
		{"body trickled to enroll", "POST " + wire.EnrollPath + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"},
		{"headers never finished", "GET /v1/status HTTP/1.1\r\nHost: x\r\n"},
		{"idle keep-alive", "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"nothing at all", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := dial(t)
			if _, err := io.WriteString(conn, c.send); err != nil {
				t.Fatal(err)
			}
			closedByServer(t, conn)
		})
	}
}

// Issue 8, finding 5: one address cannot hold more than its share of
// connections. The default timeouts leave the open ones alone meanwhile.
func TestConnectionsPerSourceCapped(t *testing.T) {
	const max = 6
	tc := newTestClusterWith(t, func(c *Config) { c.Limits.ConnsPerSource = max }, "c1")
	dial := tc.dialer("c1")
	for range max {
		dial(t)
	}
	// One more is closed before its TLS handshake completes.
	caOnly, err := pki.ClientConfig(pki.Paths{CA: pki.DirPaths(tc.tlsDir, "ops").CA})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := tls.Dial("tcp", tc.nodes["c1"].cfg.HTTPAddr, caOnly); err == nil {
		c.Close()
		t.Fatalf("connection %d from one address was accepted, the cap is %d", max+1, max)
	}
}
