package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/pki"
)

// runTLS runs 'drover tls ARGS...' and returns its output and error.
func runTLS(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runRoot(t, append([]string{"tls"}, args...)...)
}

// exitCode is what main would exit with for err.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitUsage
}

func TestTLSFlow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	out, err := runTLS(t, "init", "--dir", dir)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	tok, err := pki.ReadToken(filepath.Join(dir, pki.BootstrapTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{pki.CAFile, pki.CAKeyFile, pki.BootstrapTokenFile, "drover tls issue server", "drover tls issue client"} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q:\n%s", want, out)
		}
	}
	secrets := []string{tok, "PRIVATE KEY"}

	if _, err := runTLS(t, "init", "--dir", dir); !errors.Is(err, pki.ErrExists) {
		t.Errorf("init again: %v, want ErrExists", err)
	}

	var all strings.Builder
	all.WriteString(out)
	for _, args := range [][]string{
		{"issue", "server", "c1", "--dir", dir, "--ip", "10.0.0.1", "--ip", "127.0.0.1"},
		{"issue", "server", "c2", "--dir", dir, "--ip", "10.0.0.2,10.1.0.2", "--dns", "c2.internal"},
		{"issue", "server", "c3", "--dir", dir, "--dns", "c3.internal", "--validity", "90d"},
		{"issue", "client", "ops", "--dir", dir},
		{"issue", "client", "ci", "--dir", dir, "--out", filepath.Join(dir, "ci"), "--validity", "30d"},
		{"issue", "server", "c1", "--dir", dir, "--ip", "10.0.0.1", "--force"},
	} {
		out, err := runTLS(t, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		all.WriteString(out)
	}
	t.Logf("output:\n%s", all.String())
	for _, s := range secrets {
		if strings.Contains(all.String(), s) {
			t.Errorf("output shows a secret (%.12s...)", s)
		}
	}
	if !strings.Contains(all.String(), "export DROVER_CA=") {
		t.Errorf("client output lacks the export line:\n%s", all.String())
	}

	// The renewed c1 carries only the IP given this time: nothing is added.
	c1, err := pki.ReadCert(filepath.Join(dir, "c1.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c1.IPAddresses) != 1 || c1.IPAddresses[0].String() != "10.0.0.1" || len(c1.DNSNames) != 0 {
		t.Errorf("c1 SANs: %v %v", c1.IPAddresses, c1.DNSNames)
	}
	c2, _ := pki.ReadCert(filepath.Join(dir, "c2.crt"))
	if len(c2.IPAddresses) != 2 || len(c2.DNSNames) != 1 {
		t.Errorf("c2 SANs: %v %v", c2.IPAddresses, c2.DNSNames)
	}
	ops, _ := pki.ReadCert(filepath.Join(dir, "ops.crt"))
	if pki.RoleOf(ops) != pki.RoleClient || pki.CommonName(ops) != "ops" {
		t.Errorf("ops: role %q name %q", pki.RoleOf(ops), pki.CommonName(ops))
	}
	if _, err := os.Stat(filepath.Join(dir, "ci", "ci.key")); err != nil {
		t.Errorf("--out: %v", err)
	}

	// The files plug straight into the configs a coordinator and the CLI use.
	if _, _, err := pki.PeerConfigs(pki.DirPaths(dir, "c2")); err != nil {
		t.Errorf("PeerConfigs: %v", err)
	}
	if _, err := pki.ClientConfig(pki.DirPaths(dir, "ops")); err != nil {
		t.Errorf("ClientConfig: %v", err)
	}
}

func TestTLSRefusals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if _, err := runTLS(t, "init", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := runTLS(t, "issue", "client", "ops", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string // in the error
	}{
		{"server without addresses", []string{"issue", "server", "c1", "--dir", dir}, "--ip"},
		{"name instead of IP", []string{"issue", "server", "c1", "--dir", dir, "--ip", "c1.internal"}, "--dns"},
		{"IP as DNS", []string{"issue", "server", "c1", "--dir", dir, "--dns", "10.0.0.1"}, "--ip"},
		{"unspecified IP", []string{"issue", "server", "c1", "--dir", dir, "--ip", "0.0.0.0"}, "dials"},
		{"no name", []string{"issue", "server", "--dir", dir, "--ip", "10.0.0.1"}, "NAME"},
		{"unknown kind", []string{"issue", "admin", "x", "--dir", dir}, "server, client"},
		{"unknown tls command", []string{"renew"}, "init, issue"},
		{"client with --ip", []string{"issue", "client", "x", "--dir", dir, "--ip", "10.0.0.1"}, "unknown flag"},
		{"bad validity", []string{"issue", "client", "x", "--dir", dir, "--validity", "2 years"}, "years"},
		{"zero validity", []string{"issue", "client", "x", "--dir", dir, "--validity", "0d"}, "positive"},
		{"existing cert", []string{"issue", "client", "ops", "--dir", dir}, "already exists"},
		{"reserved name", []string{"issue", "client", "ca", "--dir", dir}, "reserved"},
		{"no CA", []string{"issue", "client", "x", "--dir", filepath.Join(dir, "nope")}, "drover tls init"},
		{"init over a CA", []string{"init", "--dir", dir}, "already exists"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := runTLS(t, c.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if code := exitCode(err); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q lacks %q", err, c.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x.key")); err == nil {
		t.Error("a refused issue wrote x.key")
	}
}

func TestValidityFlag(t *testing.T) {
	const day = 24 * 60 * 60
	for _, c := range []struct {
		in      string
		seconds int64
		str     string
	}{
		{"2y", 2 * 365 * day, "2y"},
		{"90d", 90 * day, "90d"},
		{"720h", 30 * day, "30d"},
		{"90m", 90 * 60, "1h30m0s"},
	} {
		var v validityValue
		v.d = new(time.Duration)
		if err := v.Set(c.in); err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if int64(v.d.Seconds()) != c.seconds || v.String() != c.str {
			t.Errorf("%s: %s (%q)", c.in, *v.d, v.String())
		}
	}
	for _, bad := range []string{"", "y", "1.5y", "-1d", "0h", "21y", "99999999999999y", "2 years"} {
		v := validityValue{new(time.Duration)}
		if err := v.Set(bad); err == nil {
			t.Errorf("%q accepted as %s", bad, *v.d)
		}
	}
}

func TestTLSHelpTeachesTheFlow(t *testing.T) {
	out, err := runTLS(t, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"drover tls init", "issue server c1 --ip", "issue client ops", "drover server --tls-dir tls", "DROVER_TOKEN=$(cat tls/bootstrap.token)"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	out, _ = runTLS(t, "issue", "server", "--help")
	for _, want := range []string{"--ip", "--dns", "--dir", "--out", "--force", "--validity"} {
		if !strings.Contains(out, want) {
			t.Errorf("'issue server --help' lacks %q", want)
		}
	}
}
