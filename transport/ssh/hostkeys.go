package ssh

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHostsDB reads known_hosts afresh (so that keys appended by accept-new,
// by another process or by the operator are seen). A missing file is an
// empty database.
func (d *Dialer) knownHostsDB() (ssh.HostKeyCallback, error) {
	cb, err := knownhosts.New(d.cfg.KnownHosts)
	if errors.Is(err, fs.ErrNotExist) {
		return func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ssh: known_hosts %s: %w", d.cfg.KnownHosts, err)
	}
	return cb, nil
}

// knownKeys returns the keys recorded for addr (empty when the host is
// unknown), by asking the database about a key that matches nothing.
func (d *Dialer) knownKeys(addr string) ([]knownhosts.KnownKey, error) {
	db, err := d.knownHostsDB()
	if err != nil {
		return nil, err
	}
	var ke *knownhosts.KeyError
	if err := db(addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey{}); errors.As(err, &ke) {
		return ke.Want, nil
	}
	return nil, nil
}

// probeKey is a public key no known_hosts line can match.
type probeKey struct{}

func (probeKey) Type() string                        { return "drover-probe" }
func (probeKey) Marshal() []byte                     { return []byte("\x00\x00\x00\x0cdrover-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }

// hostKeyPreference is the order in which host key algorithms are offered;
// ed25519 first, as OpenSSH does.
var hostKeyPreference = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA,
}

// algorithmsForKeyType are the signature algorithms a host key of a type can use.
func algorithmsForKeyType(keyType string) []string {
	switch keyType {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256:
		return []string{keyType}
	}
	return nil
}

// hostKeyAlgorithms restricts the handshake to the key types known for the
// host. For an unknown host (or one with only key types this package cannot
// map) it offers plain keys in preference order, ed25519 first, so that
// accept-new records the same type OpenSSH would.
func hostKeyAlgorithms(known []knownhosts.KnownKey) []string {
	want := map[string]bool{}
	for _, k := range known {
		for _, a := range algorithmsForKeyType(k.Key.Type()) {
			want[a] = true
		}
	}
	var out []string
	for _, a := range hostKeyPreference {
		if len(want) == 0 || want[a] {
			out = append(out, a)
		}
	}
	return out
}

// verifyHostKey is the handshake's host key callback.
func (d *Dialer) verifyHostKey(hostname string, remote net.Addr, key ssh.PublicKey) error {
	db, err := d.knownHostsDB()
	if err != nil {
		return err
	}
	err = db(hostname, remote, key)
	if err == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) && len(ke.Want) == 0 && d.cfg.AcceptNew {
		return d.acceptNew(hostname, remote, key)
	}
	return d.hostKeyError(hostname, key, err)
}

// hostKeyError turns a knownhosts error into one that tells the operator
// what was presented, what was expected and what to do.
func (d *Dialer) hostKeyError(hostname string, key ssh.PublicKey, err error) error {
	file := d.cfg.KnownHosts
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("%w: %s presented %s, which %s marks @revoked; refusing to connect",
			ErrHostKeyRevoked, hostname, describeKey(key), location(re.Revoked))
	case errors.As(err, &ke) && len(ke.Want) > 0:
		var recorded []string
		for _, w := range ke.Want {
			recorded = append(recorded, fmt.Sprintf("%s at %s", describeKey(w.Key), location(w)))
		}
		return fmt.Errorf("%w: %s presented %s, but known_hosts records %s. "+
			"Someone may be intercepting the connection, or the host was reinstalled. "+
			"If you have verified the new key out of band, remove the old entry (ssh-keygen -R '%s' -f %s) and add the new one; "+
			"drover never replaces a recorded key by itself",
			ErrHostKeyChanged, hostname, describeKey(key), strings.Join(recorded, "; "),
			knownhosts.Normalize(hostname), file)
	case errors.As(err, &ke):
		return fmt.Errorf("%w: %s presented %s and has no entry in %s. "+
			"Verify that fingerprint with the host's administrator, then add it: %s >> %s "+
			"(or set ssh.host_key_checking: accept-new in the plan to record keys of new hosts on first connect)",
			ErrHostKeyUnknown, hostname, describeKey(key), file, keyscanCommand(hostname, key), file)
	default:
		return fmt.Errorf("ssh: checking the host key of %s against %s: %w", hostname, file, err)
	}
}

// acceptNew appends the key of a host with no known_hosts entry. Under the
// in-process mutex and an advisory file lock it re-reads the file first, so
// that parallel dials to one host append one line, and a key recorded in the
// meantime is checked rather than duplicated.
func (d *Dialer) acceptNew(hostname string, remote net.Addr, key ssh.PublicKey) error {
	d.knownHostsMu.Lock()
	defer d.knownHostsMu.Unlock()

	path := d.cfg.KnownHosts
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("ssh: accept-new: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("ssh: accept-new: %w", err)
	}
	defer f.Close()
	unlock, err := lockFile(f)
	if err != nil {
		return fmt.Errorf("ssh: accept-new: lock %s: %w", path, err)
	}
	defer unlock()

	db, err := d.knownHostsDB()
	if err != nil {
		return err
	}
	err = db(hostname, remote, key)
	var ke *knownhosts.KeyError
	if err == nil {
		return nil
	}
	if !errors.As(err, &ke) || len(ke.Want) > 0 {
		return d.hostKeyError(hostname, key, err)
	}

	line := knownhosts.Line([]string{hostname}, key) + "\n"
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("ssh: accept-new: append to %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("ssh: accept-new: sync %s: %w", path, err)
	}
	return nil
}

func describeKey(k ssh.PublicKey) string {
	return fmt.Sprintf("%s key %s", k.Type(), ssh.FingerprintSHA256(k))
}

func location(k knownhosts.KnownKey) string {
	if k.Filename == "" {
		return "known_hosts"
	}
	return fmt.Sprintf("%s:%d", k.Filename, k.Line)
}

func knownList(keys []knownhosts.KnownKey) string {
	var s []string
	for _, k := range keys {
		s = append(s, k.Key.Type())
	}
	return strings.Join(s, ", ")
}

// keyscanCommand is the ssh-keyscan invocation that prints the line for
// exactly the key type the host presented.
func keyscanCommand(hostname string, key ssh.PublicKey) string {
	host, port, err := net.SplitHostPort(hostname)
	if err != nil {
		host, port = hostname, "22"
	}
	cmd := "ssh-keyscan"
	if port != "22" {
		cmd += " -p " + port
	}
	if t := keyscanType(key.Type()); t != "" {
		cmd += " -t " + t
	}
	return cmd + " " + host
}

func keyscanType(keyType string) string {
	switch {
	case keyType == ssh.KeyAlgoED25519:
		return "ed25519"
	case keyType == ssh.KeyAlgoSKED25519:
		return "ed25519-sk"
	case keyType == ssh.KeyAlgoSKECDSA256:
		return "ecdsa-sk"
	case strings.HasPrefix(keyType, "ecdsa-"):
		return "ecdsa"
	case keyType == ssh.KeyAlgoRSA:
		return "rsa"
	}
	return ""
}
