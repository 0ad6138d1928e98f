// Package pki is drover's small certificate authority: one CA per cluster,
// certificates for coordinators (servers), operators (clients) and host
// agents, the TLS configurations that use them, and management tokens.
//
// It exists so that an operator can secure a cluster in five minutes with
// nothing but the drover binary: no openssl recipes, no external CA. Every
// certificate carries its role in Subject.OrganizationalUnit, so a
// coordinator can tell a peer coordinator from an operator's CLI with one CA.
//
// Only the standard library is used: ECDSA P-256 keys (small, fast, and
// accepted everywhere) and TLS 1.3 as the minimum version.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Files in a TLS dir. The names are fixed so that every drover command can
// find the CA from --tls-dir alone.
const (
	CAFile             = "ca.crt"          // the CA certificate: public, copied to every node
	CAKeyFile          = "ca.key"          // the CA private key: signs every cert, keep it close
	BootstrapTokenFile = "bootstrap.token" // the first management token, one line
)

// Errors callers branch on.
var (
	// ErrExists means a file is already there: pki never silently replaces
	// a key, because a replaced CA key orphans every certificate it signed.
	ErrExists = errors.New("already exists")
	// ErrNoCA means the TLS dir has no CA yet ('drover tls init' makes one).
	ErrNoCA = errors.New("no CA (run 'drover tls init' first)")
	// ErrWrongRole means a certificate is valid but made for another role,
	// e.g. an operator's client cert presented as a coordinator's.
	ErrWrongRole = errors.New("wrong certificate role")
)

// Role says what a certificate's holder is allowed to be. It is written in
// the certificate (OU "drover-<role>") so that it is signed by the CA and
// cannot be claimed by the holder.
type Role string

// The roles.
const (
	// RoleServer is a coordinator: it serves Raft and the API and dials its
	// peers, so its cert is valid for both ServerAuth and ClientAuth.
	RoleServer Role = "server"
	// RoleClient is an operator or a CI job using the CLI: ClientAuth only.
	RoleClient Role = "client"
	// RoleAgent is a host agent enrolling with the coordinators: ClientAuth only.
	RoleAgent Role = "agent"
)

const ouPrefix = "drover-"

// Default validities: servers are few and renewed by hand, clients are
// people and CI jobs that come and go, so they expire sooner.
const (
	caValidity      = 10 * 365 * 24 * time.Hour
	serverValidity  = 2 * 365 * 24 * time.Hour
	clientValidity  = 365 * 24 * time.Hour
	backdate        = 5 * time.Minute // tolerate clocks a little behind the CA's
	defaultDirMode  = 0o700
	certMode        = 0o644
	keyMode         = 0o600
	caSubjectPrefix = "drover cluster CA "
)

func (r Role) valid() bool { return r == RoleServer || r == RoleClient || r == RoleAgent }

func (r Role) extKeyUsage() []x509.ExtKeyUsage {
	if r == RoleServer {
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
}

func (r Role) defaultValidity() time.Duration {
	if r == RoleServer {
		return serverValidity
	}
	return clientValidity
}

// Init creates dir (0700 when it does not exist yet) with a new CA (ca.crt
// 0644, ca.key 0600, valid 10 years, subject "drover cluster CA <random>")
// and a bootstrap management token in bootstrap.token (0600, one line).
// The random suffix tells two clusters' CAs apart in error messages.
//
// Init refuses (ErrExists) when any of the three files is already there:
// a second init would orphan every certificate and token of the first.
func Init(dir string) error {
	for _, f := range []string{CAKeyFile, CAFile, BootstrapTokenFile} {
		p := filepath.Join(dir, f)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("init CA in %s: %s: %w (a CA is already set up here; remove the dir to start over)", dir, p, ErrExists)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("init CA in %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, defaultDirMode); err != nil {
		return fmt.Errorf("init CA in %s: %w", dir, err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("init CA in %s: generate key: %w", dir, err)
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return fmt.Errorf("init CA in %s: %w", dir, err)
	}
	serial, err := newSerial()
	if err != nil {
		return fmt.Errorf("init CA in %s: %w", dir, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caSubjectPrefix + hex.EncodeToString(suffix), Organization: []string{"drover"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// The CA signs leaves only: no intermediate CAs can be made from it.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("init CA in %s: create certificate: %w", dir, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return fmt.Errorf("init CA in %s: %w", dir, err)
	}
	tok, err := NewToken()
	if err != nil {
		return fmt.Errorf("init CA in %s: %w", dir, err)
	}

	// The key goes first with exclusive creation: it is what claims the dir,
	// so two concurrent inits cannot both succeed. On any later failure the
	// files written so far are removed, so a retry starts clean.
	var written []string
	undo := func() {
		for _, p := range written {
			os.Remove(p)
		}
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CAKeyFile, keyPEM, keyMode},
		{CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), certMode},
		{BootstrapTokenFile, []byte(tok + "\n"), keyMode},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := writeFile(p, f.data, f.mode, false); err != nil {
			undo()
			return fmt.Errorf("init CA in %s: %w", dir, err)
		}
		written = append(written, p)
	}
	return nil
}

// CA is a loaded cluster CA that can issue and sign certificates. The key
// stays unexported so that it cannot be logged or serialized by accident.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
}

// LoadCA reads ca.crt and ca.key from dir. It returns an error wrapping
// ErrNoCA (with the path) when either is missing, and refuses a key that
// does not belong to the certificate, which would sign unverifiable certs.
func LoadCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load CA %s: %w", certPath, ErrNoCA)
	} else if err != nil {
		return nil, fmt.Errorf("load CA %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load CA %s: %w", keyPath, ErrNoCA)
	} else if err != nil {
		return nil, fmt.Errorf("load CA %s: %w", keyPath, err)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA %s: %w", certPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("load CA %s: not a CA certificate", certPath)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA %s: %w", keyPath, err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("load CA %s: key does not match certificate %s", keyPath, certPath)
	}
	return &CA{Cert: cert, key: key}, nil
}

// IssueRequest describes a certificate to issue or sign.
type IssueRequest struct {
	// Name is the certificate's CommonName and, for Issue, the base name of
	// its files (<Name>.crt, <Name>.key): a node id, a person, a CI job.
	Name string
	// Role is written in the certificate and checked by the peer.
	Role Role
	// IPs and DNS are the addresses peers dial; a server cert needs at least
	// one, because TLS clients verify the address they dialed against them.
	IPs []net.IP
	DNS []string
	// Validity defaults to 2 years for servers and 1 year otherwise. It may
	// not end after the CA does.
	Validity time.Duration
}

func (req *IssueRequest) check() error {
	if err := checkName(req.Name); err != nil {
		return err
	}
	if !req.Role.valid() {
		return fmt.Errorf("unknown role %q (want %s, %s or %s)", req.Role, RoleServer, RoleClient, RoleAgent)
	}
	if req.Role == RoleServer && len(req.IPs) == 0 && len(req.DNS) == 0 {
		return errors.New("a server certificate needs at least one IP or DNS name: the addresses its peers and clients dial")
	}
	for _, ip := range req.IPs {
		if ip == nil || ip.To16() == nil {
			return fmt.Errorf("invalid IP address in request for %q", req.Name)
		}
	}
	for _, d := range req.DNS {
		if d == "" || strings.ContainsAny(d, " /:@\t\n") || net.ParseIP(d) != nil {
			return fmt.Errorf("invalid DNS name %q (IP addresses go in IPs)", d)
		}
	}
	if req.Validity < 0 {
		return fmt.Errorf("negative validity %s", req.Validity)
	}
	return nil
}

// checkName keeps names usable as file names in the TLS dir, and keeps
// "ca" out so that issuing a cert can never touch the CA's own files.
func checkName(name string) error {
	if name == "" {
		return errors.New("empty certificate name")
	}
	if len(name) > 64 {
		return fmt.Errorf("certificate name %q is longer than 64 characters", name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("certificate name %q: use letters, digits, '-', '_' and '.' only", name)
		}
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("certificate name %q may not start with %q", name, name[:1])
	}
	if strings.EqualFold(name, "ca") {
		return fmt.Errorf("certificate name %q is reserved for the CA's own files", name)
	}
	return nil
}

// Sign signs pub into a certificate for req and returns it PEM-encoded. It
// exists for agent enrollment: the agent makes its own key and sends only
// the public half, so its private key never leaves the host.
func (ca *CA) Sign(pub crypto.PublicKey, req IssueRequest) (certPEM []byte, err error) {
	certPEM, err = ca.sign(pub, req)
	if err != nil {
		return nil, fmt.Errorf("sign %s certificate %q: %w", req.Role, req.Name, err)
	}
	return certPEM, nil
}

func (ca *CA) sign(pub crypto.PublicKey, req IssueRequest) ([]byte, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	validity := req.Validity
	if validity == 0 {
		validity = req.Role.defaultValidity()
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("it would be valid until %s but the CA expires %s; use a shorter validity or a new CA",
			notAfter.Format(time.DateOnly), ca.Cert.NotAfter.Format(time.DateOnly))
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         req.Name,
			Organization:       []string{"drover"},
			OrganizationalUnit: []string{ouPrefix + string(req.Role)},
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           req.Role.extKeyUsage(),
		BasicConstraintsValid: true,
		IPAddresses:           req.IPs,
		DNSNames:              req.DNS,
	}
	if _, ok := pub.(*rsa.PublicKey); ok {
		// RSA keys are used for key exchange in TLS 1.2; harmless in 1.3.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// Issue makes a new key for req, signs it and writes <out>/<Name>.crt (the
// leaf only: the CA cert travels separately as ca.crt) and <out>/<Name>.key
// (0600). It returns ErrExists when either file is there, unless force,
// which replaces both atomically (temp file + rename), e.g. to renew.
func (ca *CA) Issue(out string, req IssueRequest, force bool) (certPath, keyPath string, err error) {
	if err := checkName(req.Name); err != nil {
		return "", "", fmt.Errorf("issue %s certificate: %w", req.Role, err)
	}
	certPath = filepath.Join(out, req.Name+".crt")
	keyPath = filepath.Join(out, req.Name+".key")
	if !force {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return "", "", fmt.Errorf("issue %s certificate %q: %s: %w (use force to replace it)", req.Role, req.Name, p, ErrExists)
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("issue %s certificate %q: generate key: %w", req.Role, req.Name, err)
	}
	certPEM, err := ca.sign(&key.PublicKey, req)
	if err != nil {
		return "", "", fmt.Errorf("issue %s certificate %q: %w", req.Role, req.Name, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return "", "", fmt.Errorf("issue %s certificate %q: %w", req.Role, req.Name, err)
	}
	if err := os.MkdirAll(out, defaultDirMode); err != nil {
		return "", "", fmt.Errorf("issue %s certificate %q: %w", req.Role, req.Name, err)
	}
	if err := writeFile(keyPath, keyPEM, keyMode, force); err != nil {
		return "", "", fmt.Errorf("issue %s certificate %q: %w", req.Role, req.Name, err)
	}
	if err := writeFile(certPath, certPEM, certMode, force); err != nil {
		if !force {
			os.Remove(keyPath) // ours: created exclusively a moment ago
		}
		return "", "", fmt.Errorf("issue %s certificate %q: %w", req.Role, req.Name, err)
	}
	return certPath, keyPath, nil
}

// ReadCert reads the first certificate of a PEM file, e.g. to show what
// Issue wrote or to check when a node's certificate expires.
func ReadCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	c, err := parseCert(data)
	if err != nil {
		return nil, fmt.Errorf("read certificate %s: %w", path, err)
	}
	return c, nil
}

// RoleOf returns the role a certificate was issued for, read from its
// Subject.OrganizationalUnit ("drover-server", ...), or "" when it carries
// no known drover role. Only meaningful on a certificate whose chain has
// been verified: the OU is trustworthy because the CA signed it.
func RoleOf(c *x509.Certificate) Role {
	if c == nil {
		return ""
	}
	for _, ou := range c.Subject.OrganizationalUnit {
		if r, ok := strings.CutPrefix(ou, ouPrefix); ok && Role(r).valid() {
			return Role(r)
		}
	}
	return ""
}

// CommonName returns the certificate's CommonName: the node id, person or
// job it was issued to, for logs and audit records.
func CommonName(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	return c.Subject.CommonName
}

func newSerial() (*big.Int, error) {
	// 128 random bits: unique without bookkeeping, and unpredictable.
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil // never zero
}

func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return nil
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits is too small (want at least 2048)", k.N.BitLen())
		}
		return nil
	default:
		return fmt.Errorf("unsupported public key type %T", pub)
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

// ParseCertPEM parses one PEM certificate (as Sign returns it).
func ParseCertPEM(data []byte) (*x509.Certificate, error) { return parseCert(data) }
