package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Paths names the files one node or client needs: the CA certificate to
// trust, and its own certificate and key.
type Paths struct{ CA, Cert, Key string }

// DirPaths returns the conventional paths in a TLS dir: dir/ca.crt,
// dir/<name>.crt and dir/<name>.key, as written by Init and Issue, so that
// a single --tls-dir (plus the node's name) is all a command needs.
func DirPaths(dir, name string) Paths {
	return Paths{
		CA:   filepath.Join(dir, CAFile),
		Cert: filepath.Join(dir, name+".crt"),
		Key:  filepath.Join(dir, name+".key"),
	}
}

// PeerConfigs returns the TLS configs for coordinator-to-coordinator (Raft)
// traffic: mutual TLS where both sides present their server certificate.
// Each side requires that the peer's chain verifies against the CA and that
// the peer's certificate has RoleServer: an operator's or agent's cert is
// signed by the same CA, and must not be able to join the Raft cluster.
//
// The client config leaves ServerName empty: the caller sets it per dial
// (the peer's IP or DNS name), and the server's SANs are verified normally.
// Go refuses to dial without a ServerName, so forgetting it fails closed.
func PeerConfigs(p Paths) (server, client *tls.Config, err error) {
	pool, err := loadPool(p.CA)
	if err != nil {
		return nil, nil, fmt.Errorf("peer TLS: %w", err)
	}
	cert, err := loadLeaf(p, pool, RoleServer)
	if err != nil {
		return nil, nil, fmt.Errorf("peer TLS: %w", err)
	}
	server = &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{cert},
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        pool,
		VerifyConnection: requirePeerRole(RoleServer),
	}
	client = &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{cert},
		RootCAs:          pool,
		VerifyConnection: requirePeerRole(RoleServer),
	}
	return server, client, nil
}

// APIServerConfig returns the TLS config of the coordinator's HTTPS API. A
// client certificate is verified against the CA when one is presented, but
// none is required: handlers decide what a request without one may do
// (e.g. a token-authenticated call, or agent enrollment).
func APIServerConfig(p Paths) (*tls.Config, error) {
	pool, err := loadPool(p.CA)
	if err != nil {
		return nil, fmt.Errorf("API TLS: %w", err)
	}
	cert, err := loadLeaf(p, pool, RoleServer)
	if err != nil {
		return nil, fmt.Errorf("API TLS: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
	}, nil
}

// ClientConfig returns the TLS config of a client of the API (the CLI, CI,
// an agent). It trusts the cluster CA only, not the system pool: a
// certificate from a public CA for the same name must not be accepted as a
// coordinator. The client certificate is attached when p.Cert and p.Key are
// both set; the caller sets ServerName when it is not the dialed host.
func ClientConfig(p Paths) (*tls.Config, error) {
	if p.CA == "" {
		return nil, errors.New("client TLS: no CA certificate given (the cluster's ca.crt)")
	}
	pool, err := loadPool(p.CA)
	if err != nil {
		return nil, fmt.Errorf("client TLS: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
	switch {
	case p.Cert == "" && p.Key == "":
	case p.Cert == "" || p.Key == "":
		return nil, fmt.Errorf("client TLS: a client certificate needs both a cert and a key file (got cert %q, key %q)", p.Cert, p.Key)
	default:
		cert, err := loadLeaf(p, pool, "")
		if err != nil {
			return nil, fmt.Errorf("client TLS: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// requirePeerRole runs after the standard chain verification (and, on a
// client, the SAN check) and adds the role check that verification cannot
// express.
func requirePeerRole(want Role) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
			return fmt.Errorf("%w: peer presented no verified certificate", ErrWrongRole)
		}
		leaf := cs.PeerCertificates[0]
		if got := RoleOf(leaf); got != want {
			return fmt.Errorf("%w: peer %q has role %q, want %q", ErrWrongRole, CommonName(leaf), got, want)
		}
		return nil
	}
}

func loadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("load CA certificate %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// loadLeaf loads our own cert and key, and checks them now rather than at
// the first handshake: a cert from another cluster's CA, an expired cert or
// a client cert in a server's place would otherwise show up later as an
// obscure handshake failure on the other side.
func loadLeaf(p Paths, pool *x509.CertPool, want Role) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load certificate %s with key %s: %w", p.Cert, p.Key, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("load certificate %s: %w", p.Cert, err)
		}
		cert.Leaf = leaf
	}
	if want != "" && RoleOf(leaf) != want {
		return tls.Certificate{}, fmt.Errorf("load certificate %s: %w: it is a %q certificate, this needs a %q one ('drover tls issue %s NAME')",
			p.Cert, ErrWrongRole, RoleOf(leaf), want, want)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return tls.Certificate{}, fmt.Errorf("load certificate %s: does not verify against CA %s: %w", p.Cert, p.CA, err)
	}
	return cert, nil
}
