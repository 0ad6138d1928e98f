package plans

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const clusterPlan = `name: web
version: "2"
hosts:
  - {name: web1, address: 10.200.0.11, lb_server: web/web1}
load_balancer:
  haproxy: {socket: /run/haproxy.sock}
ssh:
  identity_file: /only/on/the/coordinators/id_deploy
release:
  artifact: %s
  path: /srv/app
  restart: bin/restart
health:
  http: {url: "http://{{.Host}}:8080/health"}
strategy: {allow_full_outage: true} # one server: draining it is an outage
`

// A coordinator finds the artifact by digest itself (reporting a problem
// at the key with Reject), a repair does not look at it, and a CLI talking
// to a cluster does not check the coordinators' key files.
func TestResolveFiles(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name     string
		artifact string
		files    Files
		reject   error
		want     string // artifact path, or a problem
	}{
		{"coordinator checks the artifact itself", "./gone.tar.gz",
			Files{Artifact: ArtifactUnchecked, SkipCoordinatorFiles: true}, nil, filepath.Join(f.dir, "gone.tar.gz")},
		{"the caller's problem at the key", "./app.tar.gz",
			Files{Artifact: ArtifactUnchecked, SkipCoordinatorFiles: true}, errors.New("not uploaded"),
			"plan.yaml:10:13: release.artifact: not uploaded"},
		{"a repair keeps the path unchecked", "./gone.tar.gz", Files{Artifact: ArtifactUnchecked, SkipCoordinatorFiles: true}, nil,
			filepath.Join(f.dir, "gone.tar.gz")},
		{"client skips key files", "./app.tar.gz", Files{SkipCoordinatorFiles: true}, nil, filepath.Join(f.dir, "app.tar.gz")},
		{"default checks key files", "./app.tar.gz", Files{}, nil, "plan.yaml:8:18: ssh.identity_file: file /only/on/the/coordinators/id_deploy does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(clusterPlan, "%s", tc.artifact, 1)
			d := Decode(filepath.Join(f.dir, "plan.yaml"), []byte(src), Options{})
			if tc.reject != nil {
				d.Reject("release.artifact", tc.reject)
			}
			p, err := d.Resolve(tc.files)
			if err != nil {
				if got := f.problems(t, err); got != tc.want {
					t.Fatalf("problems:\n%s\nwant %q", got, tc.want)
				}
				return
			}
			if p.Release.Artifact != tc.want {
				t.Fatalf("artifact = %q, want %q", p.Release.Artifact, tc.want)
			}
		})
	}
}

// Decoding reads no file: a plan naming an inventory, an artifact and a
// key that do not exist decodes without a problem; resolving it reports
// each at its key. Files written between the two steps are the ones used.
func TestDecodeTouchesNoFile(t *testing.T) {
	f := newFixture(t, nil)
	src := `name: web
version: "2"
inventory: hosts.yaml
ssh:
  identity_file: keys/id_new
  known_hosts: kh
release:
  artifact: app-2.tar.gz
  path: /srv/app
  restart: bin/restart
health:
  http: {url: "http://{{.Host}}:8080/health"}
`
	plan := filepath.Join(f.dir, "plan.yaml")
	d := Decode(plan, []byte(src), Options{})
	if err := d.Err(); err != nil {
		t.Fatalf("decoding reported %v", err)
	}
	_, err := d.Resolve(Files{})
	want := lines(
		"plan.yaml:3:12: inventory: file $DIR/hosts.yaml does not exist",
		"plan.yaml:5:18: ssh.identity_file: file $DIR/keys/id_new does not exist",
		"plan.yaml:8:13: release.artifact: file $DIR/app-2.tar.gz does not exist",
	)
	if got := f.problems(t, err); got != want {
		t.Fatalf("problems:\n%s\nwant:\n%s", got, want)
	}

	d = Decode(plan, []byte(src), Options{})
	for name, body := range map[string]string{
		"hosts.yaml":   "- {name: web1, address: 10.0.0.1}\n- {name: web2, address: 10.0.0.2\n",
		"keys/id_new":  "key",
		"app-2.tar.gz": "x",
	} {
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err = d.Resolve(Files{})
	// The inventory's problems are at its own lines (an unclosed flow
	// mapping here).
	if got := f.problems(t, err); !strings.HasPrefix(got, "hosts.yaml:") {
		t.Fatalf("problems:\n%s\nwant the inventory's, at hosts.yaml:LINE:COL", got)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "hosts.yaml"), []byte("- {name: web1, address: 10.0.0.1}\n- {name: web2, address: 10.0.0.2}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Decode(plan, []byte(src), Options{}).Resolve(Files{})
	if err != nil {
		t.Fatal(f.problems(t, err))
	}
	if len(p.Hosts) != 2 || p.Inventory != filepath.Join(f.dir, "hosts.yaml") {
		t.Fatalf("hosts %+v from %q", p.Hosts, p.Inventory)
	}
}
