package plans

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A plan submitted to a cluster names only the coordinator files its
// operator allowed; everything else gets one answer, whether the file
// exists or not, and its content is never read (security.md, finding 4).
func TestAllowedCoordinatorFiles(t *testing.T) {
	f := newFixture(t, map[string]string{
		"allowed/hosts.yaml":   "- {name: web1, address: 10.200.0.11, lb_server: web/web1}\n- {name: web2, address: 10.200.0.12, lb_server: web/web2}\n",
		"allowed/id_deploy":    "-----BEGIN OPENSSH PRIVATE KEY-----\n",
		"allowed/known_hosts":  "",
		"secret/bootstrap.tok": "s3cr3t-token-value\n",
	})
	secret := filepath.Join(f.dir, "secret", "bootstrap.tok")
	// A link inside the allowed folder that leads out of it.
	if err := os.Symlink(secret, filepath.Join(f.dir, "allowed", "link.yaml")); err != nil {
		t.Fatal(err)
	}
	allowed := &AllowedFiles{Paths: []string{filepath.Join(f.dir, "allowed")}}
	notAllowed := func(key, p string) string {
		return key + ": " + p + " " + ErrFileNotAllowed.Error()
	}
	const base = `name: web
version: "2"
%HOSTS%
load_balancer:
  haproxy: {%LB%}
ssh:
  identity_file: %ID%
  known_hosts: %KH%
release: {artifact: ./app.tar.gz, path: /srv/app, restart: bin/restart}
health:
  http: {url: "http://{{.Host}}:8080/health"}
`
	good := map[string]string{
		"%HOSTS%": "inventory: allowed/hosts.yaml",
		"%LB%":    "address: 127.0.0.1:9999",
		"%ID%":    "allowed/id_deploy",
		"%KH%":    "allowed/known_hosts",
	}
	tests := []struct {
		name  string
		key   string // placeholder replaced
		value string
		opts  *AllowedFiles
		want  string // "" = valid; else a substring of the problems
	}{
		{"all inside the allow-list", "", "", allowed, ""},
		{"local CLI: no allow-list", "%HOSTS%", "inventory: " + secret, nil, "hosts: must be a list"},
		{"inventory at a secret", "%HOSTS%", "inventory: " + secret, allowed, notAllowed("inventory", secret)},
		{"inventory missing outside", "%HOSTS%", "inventory: /nonexistent/hosts.yaml", allowed, notAllowed("inventory", "/nonexistent/hosts.yaml")},
		{"inventory through a link out", "%HOSTS%", "inventory: allowed/link.yaml", allowed, notAllowed("inventory", filepath.Join(f.dir, "allowed", "link.yaml"))},
		{"inventory with ..", "%HOSTS%", "inventory: allowed/../secret/bootstrap.tok", allowed, notAllowed("inventory", secret)},
		{"inventory missing inside", "%HOSTS%", "inventory: allowed/gone.yaml", allowed, "does not exist"},
		{"identity outside", "%ID%", secret, allowed, notAllowed("ssh.identity_file", secret)},
		{"known_hosts outside", "%KH%", "/etc/cron.d/x", allowed, notAllowed("ssh.known_hosts", "/etc/cron.d/x")},
		{"haproxy socket outside", "%LB%", "socket: /run/docker.sock", allowed, notAllowed("load_balancer.haproxy.socket", "/run/docker.sock")},
		{"nothing allowed by default", "%ID%", "allowed/id_deploy", &AllowedFiles{}, ErrFileNotAllowed.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := base
			for k, v := range good {
				if k == tc.key {
					v = tc.value
				}
				src = strings.ReplaceAll(src, k, v)
			}
			_, err := ParseWith(filepath.Join(f.dir, "plan.yaml"), []byte(src), Options{}, Files{Allowed: tc.opts})
			got := f.problems(t, err)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected problems:\n%s", got)
				}
				return
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("problems:\n%s\nwant %q", err, tc.want)
			}
			if tc.opts != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("the error echoes the file's content:\n%s", err)
			}
		})
	}
}
