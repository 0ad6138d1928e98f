// Package pkitest makes a throwaway cluster CA for tests, with the real
// package pki, so that tests of every package speak the same TLS as
// drover does.
package pkitest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"

	"github.com/drover-dev/drover/internal/pki"
)

// CA is a cluster CA in a test's temp dir; certificates are issued there.
type CA struct {
	*pki.CA
	Dir  string
	Pool *x509.CertPool // the CA alone
}

// New makes a CA (pki.Init) in t.TempDir().
func New(t testing.TB) *CA {
	t.Helper()
	dir := t.TempDir()
	if err := pki.Init(dir); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &CA{CA: ca, Dir: dir, Pool: pool}
}

// Issue writes NAME.crt and NAME.key for role, valid for 127.0.0.1,
// replacing earlier ones of that name, and returns their paths with the
// CA's.
func (c *CA) Issue(t testing.TB, name string, role pki.Role) pki.Paths {
	t.Helper()
	req := pki.IssueRequest{Name: name, Role: role, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	if _, _, err := c.CA.Issue(c.Dir, req, true); err != nil {
		t.Fatal(err)
	}
	return pki.DirPaths(c.Dir, name)
}

// Cert is Issue, loaded.
func (c *CA) Cert(t testing.TB, name string, role pki.Role) tls.Certificate {
	t.Helper()
	p := c.Issue(t, name, role)
	cert, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
