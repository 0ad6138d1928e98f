package plans

import (
	"errors"
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

// A plan read on a coordinator finds its artifact by digest, and a CLI
// talking to a cluster does not check the coordinators' key files.
func TestParseWithOptions(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name     string
		artifact string
		opts     Options
		want     string // artifact path, or a problem
	}{
		{"coordinator resolves the artifact", "./gone.tar.gz", Options{
			Artifact:             &ArtifactFile{Path: "/data/artifacts/abc.tar"},
			SkipCoordinatorFiles: true,
		}, "/data/artifacts/abc.tar"},
		{"resolver error at the key", "./app.tar.gz", Options{
			Artifact:             &ArtifactFile{Err: errors.New("not uploaded")},
			SkipCoordinatorFiles: true,
		}, "plan.yaml:10:13: release.artifact: not uploaded"},
		{"a repair keeps the path unchecked", "./gone.tar.gz", Options{SkipArtifact: true, SkipCoordinatorFiles: true},
			filepath.Join(f.dir, "gone.tar.gz")},
		{"client skips key files", "./app.tar.gz", Options{SkipCoordinatorFiles: true}, filepath.Join(f.dir, "app.tar.gz")},
		{"default checks key files", "./app.tar.gz", Options{}, "plan.yaml:8:18: ssh.identity_file: file /only/on/the/coordinators/id_deploy does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(clusterPlan, "%s", tc.artifact, 1)
			p, err := ParseWith(filepath.Join(f.dir, "plan.yaml"), []byte(src), tc.opts)
			if err != nil {
				if got := f.problems(t, err); !strings.HasPrefix(got, tc.want) {
					t.Fatalf("problems:\n%s\nwant prefix %q", got, tc.want)
				}
				return
			}
			if p.Release.Artifact != tc.want {
				t.Fatalf("artifact = %q, want %q", p.Release.Artifact, tc.want)
			}
		})
	}
}
