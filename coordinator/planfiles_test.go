package coordinator

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/plans"
)

// A plan submitted to a real cluster cannot read the coordinator's
// bootstrap token through inventory:, nor tell an existing file from a
// missing one (security.md, finding 4).
func TestSubmittedPlanCannotNameCoordinatorFiles(t *testing.T) {
	tc := newTestCluster(t, "c1")
	cl := tc.client(tc.token)
	testwait.For(t, "the bootstrap token stored", func() bool { _, err := cl.Deployments(t.Context()); return err == nil })
	const plan = `name: web
version: "2"
inventory: %s
load_balancer:
  haproxy: {address: 127.0.0.1:9999}
release: {artifact: ./app.tar.gz, path: /srv/app, restart: bin/restart}
health:
  http: {url: "http://{{.Host}}:8080/health"}
`
	for _, via := range []struct {
		name   string
		submit func(path string) error
	}{
		{"submit", func(path string) error {
			_, err := cl.Submit(t.Context(), api.SubmitRequest{PlanName: "/tmp/plan.yaml", Plan: fmt.Sprintf(plan, path)})
			return err
		}},
		{"repair", func(path string) error {
			_, err := cl.Repair(t.Context(), api.RepairRequest{PlanName: "/tmp/plan.yaml", Plan: fmt.Sprintf(plan, path)})
			return err
		}},
	} {
		t.Run(via.name, func(t *testing.T) { checkPlanFiles(t, tc, via.submit) })
	}
}

// checkPlanFiles checks that submit, given a plan naming path, refuses
// the bootstrap token file and a missing file alike.
func checkPlanFiles(t *testing.T, tc *testCluster, submit func(path string) error) {
	tokenFile := filepath.Join(tc.tlsDir, "bootstrap.token")
	errToken := submit(tokenFile)
	if errToken == nil || !errors.Is(errToken, api.ErrBadRequest) {
		t.Fatalf("plan naming the bootstrap token: got %v, want a 400", errToken)
	}
	if strings.Contains(errToken.Error(), tc.token) {
		t.Fatalf("the 400 echoes the bootstrap token:\n%v", errToken)
	}
	want := tokenFile + " " + plans.ErrFileNotAllowed.Error()
	if !strings.Contains(errToken.Error(), want) {
		t.Fatalf("error:\n%v\nwant it to say %q", errToken, want)
	}
	missing := filepath.Join(tc.tlsDir, "no-such-file")
	errMissing := submit(missing)
	// Same message for a missing file: existence cannot be probed.
	if got, want := strings.ReplaceAll(errMissing.Error(), missing, "PATH"), strings.ReplaceAll(errToken.Error(), tokenFile, "PATH"); got != want {
		t.Fatalf("missing and forbidden files answer differently:\n%s\nvs\n%s", got, want)
	}
}
