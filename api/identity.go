package api

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
)

// HeaderForwardedCert carries, on a request a follower forwards to the
// leader, the certificate its caller presented to the follower (base64 of
// the DER). The leader takes it as the caller's identity, and believes it
// only from a peer that itself presents a server certificate and sets
// HeaderForwardedBy: a forwarder never lends its own server identity to
// its caller (docs/security.md, rule 1).
const HeaderForwardedCert = "X-Drover-Forwarded-Cert"

// HeaderReplica marks an artifact upload that one coordinator pushes to
// another: the receiver stores it and does not push it on. Only a caller
// with a server certificate may set it (docs/security.md, rule 10).
const HeaderReplica = "X-Drover-Replica"

// Certificates decides whether a certificate the TLS layer verified
// against the cluster CA is still good (a revoked or superseded agent
// certificate is not). The API asks it on every route, about the caller's
// own certificate, forwarded or not.
type Certificates interface {
	Admit(cert *x509.Certificate) error
}

// caller returns the certificate of whoever made the request: the TLS
// peer's, or, when the peer is a coordinator forwarding it, the one its
// caller presented to that coordinator.
func (s *server) caller(r *http.Request) (*x509.Certificate, *Error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, &Error{http.StatusUnauthorized, codeCertificateRequired,
			"a client certificate issued by the cluster CA is required"}
	}
	chain := r.TLS.VerifiedChains[0]
	peer := chain[0]
	cert := peer
	if r.Header.Get(HeaderForwardedBy) != "" && isServer(peer) {
		fwd, err := forwardedCert(r.Header.Get(HeaderForwardedCert), chain)
		if err != nil {
			return nil, &Error{http.StatusUnauthorized, codeCertificateRequired,
				fmt.Sprintf("request forwarded by %s without a valid certificate of its caller: %v", peer.Subject.CommonName, err)}
		}
		cert = fwd
	}
	if s.cfg.Certs != nil {
		if err := s.cfg.Certs.Admit(cert); err != nil {
			return nil, &Error{http.StatusForbidden, codeForbidden, err.Error()}
		}
	}
	return cert, nil
}

// forwardedCert decodes the caller's certificate that a forwarder sent and
// checks it against the CA that verified the forwarder, so that even a
// coordinator cannot vouch for a certificate the cluster CA did not sign.
func forwardedCert(v string, peerChain []*x509.Certificate) (*x509.Certificate, error) {
	if v == "" {
		return nil, fmt.Errorf("no %s header", HeaderForwardedCert)
	}
	der, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", HeaderForwardedCert, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", HeaderForwardedCert, err)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(peerChain[len(peerChain)-1])
	for _, c := range peerChain[1 : len(peerChain)-1] {
		inter.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("the caller's certificate: %w", err)
	}
	return cert, nil
}

// encodeCert is the value of HeaderForwardedCert for the caller of r, ""
// when it presented none.
func encodeCert(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return ""
	}
	// A forwarded request is never forwarded again (one hop), so the
	// caller here is always the TLS peer.
	return base64.StdEncoding.EncodeToString(r.TLS.VerifiedChains[0][0].Raw)
}

func isServer(c *x509.Certificate) bool {
	return slices.Contains(c.Subject.OrganizationalUnit, OUServer)
}

type replicaKey struct{}

// IsReplica reports whether the request behind ctx is an artifact push
// from another coordinator (HeaderReplica from a server certificate).
func IsReplica(ctx context.Context) bool { v, _ := ctx.Value(replicaKey{}).(bool); return v }
