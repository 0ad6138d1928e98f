package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var localhost = []net.IP{net.IPv4(127, 0, 0, 1)}

// newCA inits a CA in a fresh dir and loads it.
func newCA(t *testing.T) (string, *CA) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	if err := Init(dir); err != nil {
		t.Fatalf("Init: %v", err)
	}
	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	return dir, ca
}

func issue(t *testing.T, ca *CA, dir string, req IssueRequest) Paths {
	t.Helper()
	if _, _, err := ca.Issue(dir, req, false); err != nil {
		t.Fatalf("Issue %s: %v", req.Name, err)
	}
	return DirPaths(dir, req.Name)
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInit(t *testing.T) {
	dir, ca := newCA(t)
	if err := Init(dir); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init: got %v, want ErrExists", err)
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{
		{dir, 0o700},
		{filepath.Join(dir, CAFile), 0o644},
		{filepath.Join(dir, CAKeyFile), 0o600},
		{filepath.Join(dir, BootstrapTokenFile), 0o600},
	} {
		if got := mode(t, c.path); got != c.want {
			t.Errorf("%s: mode %o, want %o", c.path, got, c.want)
		}
	}
	if !ca.Cert.IsCA || !strings.HasPrefix(ca.Cert.Subject.CommonName, "drover cluster CA ") {
		t.Errorf("CA cert: IsCA %v, subject %q", ca.Cert.IsCA, ca.Cert.Subject.CommonName)
	}
	if years := ca.Cert.NotAfter.Sub(time.Now()).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("CA validity %.1f years, want 10", years)
	}
	tok, err := ReadToken(filepath.Join(dir, BootstrapTokenFile))
	if err != nil || !strings.HasPrefix(tok, "drv_") {
		t.Errorf("bootstrap token: %v (prefix ok: %v)", err, strings.HasPrefix(tok, "drv_"))
	}

	// Two clusters get distinguishable CAs.
	_, other := newCA(t)
	if other.Cert.Subject.CommonName == ca.Cert.Subject.CommonName {
		t.Errorf("two CAs share the subject %q", ca.Cert.Subject.CommonName)
	}
}

func TestInitRefusesAnyExistingFile(t *testing.T) {
	for _, f := range []string{CAFile, CAKeyFile, BootstrapTokenFile} {
		t.Run(f, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, f), []byte("keep me\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := Init(dir); !errors.Is(err, ErrExists) {
				t.Fatalf("got %v, want ErrExists", err)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, f)); string(b) != "keep me\n" {
				t.Errorf("%s was changed", f)
			}
		})
	}
}

func TestLoadCAMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadCA(dir)
	if !errors.Is(err, ErrNoCA) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("got %v, want ErrNoCA naming %s", err, dir)
	}
}

func TestIssue(t *testing.T) {
	dir, ca := newCA(t)
	certPath, keyPath, err := ca.Issue(dir, IssueRequest{Name: "c1", Role: RoleServer, IPs: localhost, DNS: []string{"c1.internal"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if certPath != filepath.Join(dir, "c1.crt") || keyPath != filepath.Join(dir, "c1.key") {
		t.Errorf("paths %s %s", certPath, keyPath)
	}
	if got := mode(t, keyPath); got != 0o600 {
		t.Errorf("key mode %o, want 600", got)
	}
	data, _ := os.ReadFile(certPath)
	if n := strings.Count(string(data), "BEGIN CERTIFICATE"); n != 1 {
		t.Errorf("cert file holds %d certificates, want the leaf only", n)
	}
	leaf, err := parseCert(data)
	if err != nil {
		t.Fatal(err)
	}
	if RoleOf(leaf) != RoleServer || CommonName(leaf) != "c1" {
		t.Errorf("role %q name %q", RoleOf(leaf), CommonName(leaf))
	}
	if !leaf.IPAddresses[0].Equal(localhost[0]) || leaf.DNSNames[0] != "c1.internal" {
		t.Errorf("SANs %v %v", leaf.IPAddresses, leaf.DNSNames)
	}
	if years := leaf.NotAfter.Sub(time.Now()).Hours() / 24 / 365; years < 1.9 || years > 2.1 {
		t.Errorf("server validity %.1f years, want 2", years)
	}

	if _, _, err := ca.Issue(dir, IssueRequest{Name: "c1", Role: RoleServer, IPs: localhost}, false); !errors.Is(err, ErrExists) {
		t.Errorf("issue again: got %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(certPath); string(b) != string(data) {
		t.Error("refused issue changed the cert")
	}
	if _, _, err := ca.Issue(dir, IssueRequest{Name: "c1", Role: RoleServer, IPs: localhost}, true); err != nil {
		t.Errorf("issue with force: %v", err)
	}
	if b, _ := os.ReadFile(certPath); string(b) == string(data) {
		t.Error("forced issue did not replace the cert")
	}
	if got := mode(t, keyPath); got != 0o600 {
		t.Errorf("replaced key mode %o, want 600", got)
	}
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
		t.Errorf("replaced pair does not match: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}

	// A client cert defaults to one year and carries ClientAuth only.
	p := issue(t, ca, dir, IssueRequest{Name: "ops", Role: RoleClient})
	data, _ = os.ReadFile(p.Cert)
	leaf, _ = parseCert(data)
	if years := leaf.NotAfter.Sub(time.Now()).Hours() / 24 / 365; years < 0.9 || years > 1.1 {
		t.Errorf("client validity %.1f years, want 1", years)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("client ExtKeyUsage %v", leaf.ExtKeyUsage)
	}
}

func TestIssueRefusesBadRequests(t *testing.T) {
	dir, ca := newCA(t)
	for _, c := range []struct {
		name string
		req  IssueRequest
	}{
		{"server without SANs", IssueRequest{Name: "c1", Role: RoleServer}},
		{"name of the CA files", IssueRequest{Name: "ca", Role: RoleClient}},
		{"name of the CA files, other case", IssueRequest{Name: "CA", Role: RoleClient}},
		{"path in name", IssueRequest{Name: "../x", Role: RoleClient}},
		{"hidden name", IssueRequest{Name: ".x", Role: RoleClient}},
		{"empty name", IssueRequest{Role: RoleClient}},
		{"unknown role", IssueRequest{Name: "x", Role: "admin"}},
		{"IP as DNS name", IssueRequest{Name: "c1", Role: RoleServer, DNS: []string{"10.0.0.1"}}},
		{"past the CA", IssueRequest{Name: "x", Role: RoleClient, Validity: 20 * 365 * 24 * time.Hour}},
		{"negative validity", IssueRequest{Name: "x", Role: RoleClient, Validity: -time.Hour}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ca.Issue(dir, c.req, false)
			if err == nil {
				t.Fatal("issued")
			}
			t.Log(err)
		})
	}
	if _, err := LoadCA(dir); err != nil {
		t.Fatalf("CA damaged: %v", err)
	}
}

// handshake runs one TLS handshake over 127.0.0.1 and returns both sides'
// errors. In TLS 1.3 the client finishes before the server has checked the
// client's certificate, so the client also reads one byte to see a refusal.
func handshake(t *testing.T, srv, cli *tls.Config, serverName string) (srvErr, cliErr error, st tls.ConnectionState) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		err error
		st  tls.ConnectionState
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		_, err = tc.Write([]byte{'!'})
		done <- result{err: err, st: tc.ConnectionState()}
	}()
	cfg := cli.Clone()
	cfg.ServerName = serverName
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, cliErr := tls.DialWithDialer(d, "tcp", ln.Addr().String(), cfg)
	if cliErr == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, cliErr = io.ReadFull(c, make([]byte, 1))
		c.Close()
	}
	r := <-done
	return r.err, cliErr, r.st
}

func TestPeerHandshake(t *testing.T) {
	dir, ca := newCA(t)
	c1 := issue(t, ca, dir, IssueRequest{Name: "c1", Role: RoleServer, IPs: localhost})
	c2 := issue(t, ca, dir, IssueRequest{Name: "c2", Role: RoleServer, IPs: localhost, DNS: []string{"c2.internal"}})
	s1, k1, err := PeerConfigs(c1)
	if err != nil {
		t.Fatal(err)
	}
	s2, k2, err := PeerConfigs(c2)
	if err != nil {
		t.Fatal(err)
	}
	if k1.ServerName != "" {
		t.Errorf("peer client config sets ServerName %q", k1.ServerName)
	}
	for _, c := range []struct {
		name       string
		srv, cli   *tls.Config
		serverName string
		wantPeer   string
	}{
		{"c2 dials c1", s1, k2, "127.0.0.1", "c2"},
		{"c1 dials c2", s2, k1, "127.0.0.1", "c1"},
		{"c1 dials c2 by DNS name", s2, k1, "c2.internal", "c1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srvErr, cliErr, st := handshake(t, c.srv, c.cli, c.serverName)
			if srvErr != nil || cliErr != nil {
				t.Fatalf("server: %v; client: %v", srvErr, cliErr)
			}
			if st.Version != tls.VersionTLS13 {
				t.Errorf("version %x, want TLS 1.3", st.Version)
			}
			if got := CommonName(st.PeerCertificates[0]); got != c.wantPeer {
				t.Errorf("server saw peer %q, want %q", got, c.wantPeer)
			}
		})
	}
}

func TestPeerRefusals(t *testing.T) {
	dir, ca := newCA(t)
	c1 := issue(t, ca, dir, IssueRequest{Name: "c1", Role: RoleServer, IPs: localhost})
	ops := issue(t, ca, dir, IssueRequest{Name: "ops", Role: RoleClient})
	agent := issue(t, ca, dir, IssueRequest{Name: "web1", Role: RoleAgent})
	s1, k1, err := PeerConfigs(c1)
	if err != nil {
		t.Fatal(err)
	}
	otherDir, other := newCA(t)
	evil := issue(t, other, otherDir, IssueRequest{Name: "c9", Role: RoleServer, IPs: localhost})
	evilServer, _, err := PeerConfigs(evil)
	if err != nil {
		t.Fatal(err)
	}

	// withCert presents cert p but trusts this cluster's CA, so that only
	// the server's check of the client can fail.
	withCert := func(p Paths) *tls.Config {
		cfg, err := ClientConfig(Paths{CA: c1.CA, Cert: p.Cert, Key: p.Key})
		if err == nil {
			return cfg
		}
		// A foreign cert does not load through ClientConfig (it is checked
		// against the CA), and Go's client would not even send it to a
		// server asking for this CA's certs. Force it out, to test the
		// server's chain check.
		pair, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil {
			t.Fatal(err)
		}
		cfg = k1.Clone()
		cfg.Certificates = nil
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
		return cfg
	}

	for _, c := range []struct {
		name       string
		srv, cli   *tls.Config
		serverName string
		wantRole   bool // refused for its role (ErrWrongRole) rather than its chain
	}{
		{"client cert refused by peer server", s1, withCert(ops), "127.0.0.1", true},
		{"agent cert refused by peer server", s1, withCert(agent), "127.0.0.1", true},
		{"no cert refused by peer server", s1, &tls.Config{RootCAs: k1.RootCAs, MinVersion: tls.VersionTLS13}, "127.0.0.1", false},
		{"other CA's server cert refused by peer server", s1, withCert(evil), "127.0.0.1", false},
		{"other CA's server refused by peer client", evilServer, k1, "127.0.0.1", false},
		{"wrong server name refused by peer client", s1, k1, "10.9.9.9", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srvErr, cliErr, _ := handshake(t, c.srv, c.cli, c.serverName)
			t.Logf("server: %v; client: %v", srvErr, cliErr)
			if srvErr == nil || cliErr == nil {
				t.Fatalf("connected: server err %v, client err %v", srvErr, cliErr)
			}
			if c.wantRole && !errors.Is(srvErr, ErrWrongRole) {
				t.Errorf("server error %v, want ErrWrongRole", srvErr)
			}
		})
	}

	// A server configured with the wrong files fails at load, not at the
	// first handshake.
	if _, _, err := PeerConfigs(Paths{CA: c1.CA, Cert: ops.Cert, Key: ops.Key}); !errors.Is(err, ErrWrongRole) {
		t.Errorf("PeerConfigs with a client cert: %v, want ErrWrongRole", err)
	}
	if _, _, err := PeerConfigs(Paths{CA: c1.CA, Cert: evil.Cert, Key: evil.Key}); err == nil {
		t.Error("PeerConfigs with another CA's cert: loaded")
	}
	if _, _, err := PeerConfigs(Paths{CA: c1.CA, Cert: c1.Cert, Key: ops.Key}); err == nil {
		t.Error("PeerConfigs with a mismatched key: loaded")
	}
}

func TestAPIServerConfig(t *testing.T) {
	dir, ca := newCA(t)
	c1 := issue(t, ca, dir, IssueRequest{Name: "c1", Role: RoleServer, IPs: localhost})
	ops := issue(t, ca, dir, IssueRequest{Name: "ops", Role: RoleClient})
	srv, err := APIServerConfig(c1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := APIServerConfig(ops); !errors.Is(err, ErrWrongRole) {
		t.Errorf("APIServerConfig with a client cert: %v, want ErrWrongRole", err)
	}
	anon, err := ClientConfig(Paths{CA: c1.CA})
	if err != nil {
		t.Fatal(err)
	}
	withCert, err := ClientConfig(ops)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ClientConfig(Paths{CA: c1.CA, Cert: ops.Cert}); err == nil {
		t.Error("ClientConfig with a cert and no key: accepted")
	}
	if _, err := ClientConfig(Paths{}); err == nil {
		t.Error("ClientConfig without a CA: accepted")
	}

	for _, c := range []struct {
		name     string
		cli      *tls.Config
		wantPeer string
	}{
		{"no client cert", anon, ""},
		{"client cert", withCert, "ops"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srvErr, cliErr, st := handshake(t, srv, c.cli, "127.0.0.1")
			if srvErr != nil || cliErr != nil {
				t.Fatalf("server: %v; client: %v", srvErr, cliErr)
			}
			got := ""
			if len(st.VerifiedChains) > 0 {
				got = CommonName(st.VerifiedChains[0][0])
				if RoleOf(st.VerifiedChains[0][0]) != RoleClient {
					t.Errorf("role %q", RoleOf(st.VerifiedChains[0][0]))
				}
			}
			if got != c.wantPeer {
				t.Errorf("peer %q, want %q", got, c.wantPeer)
			}
		})
	}

	// ClientConfig trusts the cluster CA only: a server of another CA fails.
	otherDir, other := newCA(t)
	evil := issue(t, other, otherDir, IssueRequest{Name: "c9", Role: RoleServer, IPs: localhost})
	evilSrv, err := APIServerConfig(evil)
	if err != nil {
		t.Fatal(err)
	}
	if _, cliErr, _ := handshake(t, evilSrv, anon, "127.0.0.1"); cliErr == nil {
		t.Error("client accepted another CA's server")
	}
}

func TestSignExternalKey(t *testing.T) {
	_, ca := newCA(t)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, c := range []struct {
		name string
		pub  any
	}{
		{"ecdsa", &ecKey.PublicKey},
		{"ed25519", edPub},
	} {
		t.Run(c.name, func(t *testing.T) {
			certPEM, err := ca.Sign(c.pub, IssueRequest{Name: "web1", Role: RoleAgent, Validity: 30 * 24 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := pem.Decode(certPEM)
			if b == nil || b.Type != "CERTIFICATE" {
				t.Fatalf("not a PEM certificate")
			}
			leaf, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("verify: %v", err)
			}
			if RoleOf(leaf) != RoleAgent || CommonName(leaf) != "web1" {
				t.Errorf("role %q name %q", RoleOf(leaf), CommonName(leaf))
			}
			if !publicKeysEqual(leaf.PublicKey, c.pub) {
				t.Error("certificate is for another key")
			}
			if d := leaf.NotAfter.Sub(time.Now()); d < 29*24*time.Hour || d > 31*24*time.Hour {
				t.Errorf("validity %s, want 30 days", d)
			}
		})
	}
	if _, err := ca.Sign("not a key", IssueRequest{Name: "x", Role: RoleAgent}); err == nil {
		t.Error("signed a non-key")
	}
}

func TestRoleOf(t *testing.T) {
	for _, c := range []struct {
		ous  []string
		want Role
	}{
		{[]string{"drover-server"}, RoleServer},
		{[]string{"ops", "drover-client"}, RoleClient},
		{[]string{"drover-agent"}, RoleAgent},
		{[]string{"drover-admin"}, ""},
		{[]string{"server"}, ""},
		{nil, ""},
	} {
		c0 := &x509.Certificate{}
		c0.Subject.OrganizationalUnit = c.ous
		if got := RoleOf(c0); got != c.want {
			t.Errorf("RoleOf(%v) = %q, want %q", c.ous, got, c.want)
		}
	}
	if RoleOf(nil) != "" || CommonName(nil) != "" {
		t.Error("nil certificate")
	}
}

func TestTokens(t *testing.T) {
	a, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewToken()
	if a == b || !strings.HasPrefix(a, "drv_") || len(a) != len("drv_")+43 {
		t.Fatalf("tokens %d chars, distinct %v", len(a), a != b)
	}
	h := HashToken(a)
	if len(h) != 64 || strings.Contains(h, a) {
		t.Errorf("hash %q", h)
	}
	if HashToken(a) != h {
		t.Error("hash not deterministic")
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, content, want string
		wantErr             bool
	}{
		{"plain", "drv_abc", "drv_abc", false},
		{"newline", "drv_abc\n", "drv_abc", false},
		{"spaces", "  drv_abc \r\n", "drv_abc", false},
		{"empty", "", "", true},
		{"blank", " \n\n", "", true},
		{"two lines", "drv_a\ndrv_b\n", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			os.WriteFile(p, []byte(c.content), 0o600)
			got, err := ReadToken(p)
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("got %q, %v", got, err)
			}
			if err != nil && strings.Contains(err.Error(), "drv_") {
				t.Errorf("error quotes the token: %v", err)
			}
		})
	}
	if _, err := ReadToken(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
}
