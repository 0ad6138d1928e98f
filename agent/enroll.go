package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/atomicfile"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/transport/agent/wire"
)

// enrollTimeout bounds one enrollment request.
const enrollTimeout = 30 * time.Second

// maxRedirects bounds how many times a 503 may send the agent to another
// address in one attempt, so that two nodes naming each other cannot loop.
const maxRedirects = 3

// Enroll exchanges the join token for a certificate: it makes an ECDSA
// P-256 key in state_dir/agent.key (0600; an existing key is reused, so a
// retry after a crash keeps the same identity), POSTs a wire.EnrollRequest
// to the coordinators over TLS verified against cfg.CA, stores the
// certificate in state_dir/agent.crt (0600) and removes the token file.
//
// A refusal (HTTP 4xx: the token was already used, expired or unknown)
// returns an error wrapping ErrRefused that names the coordinator's
// reason; it is permanent. Other errors (no coordinator reachable, a
// coordinator not verified by the CA) may pass with time. When a
// certificate is already there, Enroll does nothing: the token is never
// needed again.
func Enroll(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	log := cfg.logger()
	if _, err := os.Stat(cfg.path(certFile)); err == nil {
		log.Info("already enrolled", "certificate", cfg.path(certFile))
		return nil
	}
	if cfg.TokenFile == "" {
		return fmt.Errorf("enroll %s: %w: no certificate in %s and no token_file configured (create a join token with 'drover agent token create')",
			cfg.Name, ErrNotEnrolled, cfg.StateDir)
	}
	tok, err := pki.ReadToken(cfg.TokenFile)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("enroll %s: %w: no certificate in %s and no join token at %s (create one with 'drover agent token create')",
			cfg.Name, ErrNotEnrolled, cfg.StateDir, cfg.TokenFile)
	} else if err != nil {
		return fmt.Errorf("enroll %s: %w", cfg.Name, err)
	}
	if err := os.MkdirAll(cfg.StateDir, stateMode); err != nil {
		return fmt.Errorf("enroll %s: %w", cfg.Name, err)
	}
	key, err := loadOrMakeKey(cfg.path(keyFile))
	if err != nil {
		return fmt.Errorf("enroll %s: %w", cfg.Name, err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("enroll %s: %w", cfg.Name, err)
	}
	body, err := json.Marshal(wire.EnrollRequest{Name: cfg.Name, Token: tok, PublicKey: pub})
	if err != nil {
		return fmt.Errorf("enroll %s: %w", cfg.Name, err)
	}
	tlsCfg, err := pki.ClientConfig(pki.Paths{CA: cfg.CA})
	if err != nil {
		return fmt.Errorf("enroll %s: %w", cfg.Name, err)
	}
	client := &http.Client{
		Timeout: enrollTimeout,
		Transport: &http.Transport{
			TLSClientConfig: tlsCfg,
			Proxy:           http.ProxyFromEnvironment,
		},
		// A coordinator answers or names the leader; it never redirects.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()

	var errs []error
	for _, addr := range cfg.Coordinators {
		certPEM, err := enrollAt(ctx, client, addr, body, 0)
		if errors.Is(err, ErrRefused) {
			return fmt.Errorf("enroll %s: %w", cfg.Name, err)
		}
		if err != nil {
			log.Warn("enrollment attempt failed", "coordinator", addr, "err", err)
			errs = append(errs, err)
			continue
		}
		if err := checkIssued(certPEM, key, cfg); err != nil {
			return fmt.Errorf("enroll %s: certificate from %s: %w", cfg.Name, addr, err)
		}
		if err := atomicfile.Write(cfg.path(certFile), certPEM, secretMode); err != nil {
			return fmt.Errorf("enroll %s: store certificate: %w", cfg.Name, err)
		}
		// The token is spent on the coordinators' side; deleting it is
		// hygiene, not correctness, so failing to is only a warning.
		if err := os.Remove(cfg.TokenFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("could not remove the spent join token file", "file", cfg.TokenFile, "err", err)
		}
		log.Info("enrolled", "name", cfg.Name, "coordinator", addr, "certificate", cfg.path(certFile))
		return nil
	}
	return fmt.Errorf("enroll %s: no coordinator enrolled us: %w", cfg.Name, errors.Join(errs...))
}

// enrollAt POSTs the request to addr and follows a 503's leader address.
func enrollAt(ctx context.Context, client *http.Client, addr string, body []byte, hops int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+wire.EnrollPath, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %w", addr, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		var er wire.EnrollResponse
		if err := json.Unmarshal(data, &er); err != nil {
			return nil, fmt.Errorf("%s: malformed enrollment answer: %w", addr, err)
		}
		return er.Certificate, nil
	case resp.StatusCode == http.StatusServiceUnavailable:
		if leader := leaderOf(resp); leader != "" && leader != addr && hops < maxRedirects {
			return enrollAt(ctx, client, leader, body, hops+1)
		}
		return nil, fmt.Errorf("%s: not the leader, and no leader known (%s)", addr, describeBody(data))
	case resp.StatusCode >= 400 && resp.StatusCode < 500 &&
		resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return nil, fmt.Errorf("%w by %s (HTTP %d): %s", ErrRefused, addr, resp.StatusCode, describeBody(data))
	default:
		return nil, fmt.Errorf("%s: HTTP %d: %s", addr, resp.StatusCode, describeBody(data))
	}
}

// describeBody turns a coordinator's error answer, {"error": "...",
// "code": "..."}, into words; anything else is quoted, shortened.
func describeBody(data []byte) string {
	var e struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		if e.Code != "" {
			return fmt.Sprintf("%s (code %s)", e.Error, e.Code)
		}
		return e.Error
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "no details given"
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// leaderOf reads the leader's address from a 503, tolerating a scheme.
func leaderOf(resp *http.Response) string {
	l := strings.TrimSpace(resp.Header.Get(wire.LeaderHeader))
	l = strings.TrimPrefix(strings.TrimPrefix(l, "https://"), "http://")
	return strings.TrimSuffix(l, "/")
}

// checkIssued refuses a certificate we could not use: not for our key
// (the connection would fail later, obscurely), not an agent's, not for
// our name, or not from the cluster CA.
func checkIssued(certPEM []byte, key *ecdsa.PrivateKey, cfg Config) error {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return errors.New("no PEM certificate in the answer")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return err
	}
	if !key.PublicKey.Equal(c.PublicKey) {
		return errors.New("it is not for this agent's key")
	}
	if r := pki.RoleOf(c); r != pki.RoleAgent {
		return fmt.Errorf("it has role %q, want %q", r, pki.RoleAgent)
	}
	if c.Subject.CommonName != cfg.Name {
		return fmt.Errorf("it is for %q, not %q", c.Subject.CommonName, cfg.Name)
	}
	caPEM, err := os.ReadFile(cfg.CA)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("it does not verify against %s: %w", cfg.CA, err)
	}
	return nil
}

// loadOrMakeKey returns the agent's key, making it on first use. The key
// is written atomically, so a crash leaves either no key or a whole one.
func loadOrMakeKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		b, _ := pem.Decode(data)
		if b == nil || b.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("key %s: no PKCS#8 PEM private key in it", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %s: malformed private key", path) // never quote key bytes
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("key %s: not an ECDSA key", path)
		}
		return ek, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("key: %w", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), secretMode); err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	return k, nil
}
