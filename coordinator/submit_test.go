package coordinator

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/internal/testwait"
)

// testVersion is the version the test coordinators report.
const testVersion = "9.8.7-test"

// A plan submitted to a cluster takes its variables from the request (what
// the CLI read from the operator's environment, and --set), never from the
// coordinator's own environment, which holds its secrets. And /v1/status
// reports the version the server was built with.
func TestSubmittedPlanVariablesComeFromTheRequestOnly(t *testing.T) {
	tc := newTestCluster(t, "c1")
	ctx := context.Background()
	cl := tc.client(tc.token)
	testwait.For(t, "the cluster to answer", func() bool { _, err := cl.Deployments(ctx); return err == nil })
	if st, err := cl.Status(ctx); err != nil || st.Version != testVersion {
		t.Errorf("status: version %q, %v; want %s", st.Version, err, testVersion)
	}

	art := tarball(t)
	sum := sha256.Sum256(art)
	sha := hex.EncodeToString(sum[:])
	if err := cl.UploadArtifact(ctx, sha, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(art)), nil }); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VERSION", "from-the-coordinator")
	// Port 1 of the loopback refuses at once: the deployment fails its
	// preflight without reaching any network.
	const plan = "name: NAME\nversion: ${VERSION}\nhosts: [{name: web1, address: \"127.0.0.1:1\"}]\n" +
		"release: {artifact: \"app-${VERSION}.tar.gz\", path: /srv/app, restart: /bin/true}\nhealth: {command: \"true\"}\n"
	for i, c := range []struct {
		name    string
		req     api.SubmitRequest
		version string
		err     string
	}{
		{"no variables sent", api.SubmitRequest{}, "", "web.yaml:2:10: version: variable VERSION is not set"},
		{"sent by the CLI", api.SubmitRequest{Vars: map[string]string{"VERSION": "2.0.1"}}, "2.0.1", ""},
		{"--set sent by the CLI", api.SubmitRequest{Vars: map[string]string{"VERSION": "2.0.1"}, Set: map[string]string{"version": "3.0.0"}}, "3.0.0", ""},
		{"--set of another key", api.SubmitRequest{Set: map[string]string{"name": "x"}}, "", "--set: name cannot be set"},
		// The archive is the cluster's copy, found by digest; a request
		// without one is refused at the plan's release.artifact.
		{"no artifact sent", api.SubmitRequest{Vars: map[string]string{"VERSION": "2.0.1"}}, "",
			"web.yaml:4:21: release.artifact: upload the artifact first"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := c.req
			req.PlanName, req.ArtifactSHA256 = "web.yaml", sha
			if c.name == "no artifact sent" {
				req.ArtifactSHA256 = ""
			}
			req.Plan = strings.Replace(plan, "NAME", fmt.Sprintf("web%d", i), 1) // one deployment per name
			id, err := cl.Submit(ctx, req)
			if c.err != "" {
				if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("submit: %v, want a bad request with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d, err := cl.Deployment(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if d.Version != c.version {
				t.Errorf("recorded version %q, want %q", d.Version, c.version)
			}
			// It fails its preflight; until then it holds web1, which the
			// next case names too.
			testwait.For(t, id+" to end", func() bool { d, err := cl.Deployment(ctx, id); return err == nil && d.State.Terminal() })
		})
	}
}

// A repair's plan text takes its variables from the request only, too.
func TestRepairPlanVariablesComeFromTheRequestOnly(t *testing.T) {
	tc := newTestCluster(t, "c1")
	ctx := context.Background()
	cl := tc.client(tc.token)
	testwait.For(t, "the cluster to answer", func() bool { _, err := cl.Deployments(ctx); return err == nil })
	t.Setenv("VERSION", "from-the-coordinator")
	const plan = "name: web\nversion: ${VERSION}\nhosts: [{name: web1, address: \"127.0.0.1:1\"}]\n" +
		"release: {artifact: app.tar.gz, path: /srv/app, restart: /bin/true}\nhealth: {command: \"true\"}\n"
	_, err := cl.Repair(ctx, api.RepairRequest{PlanName: "web.yaml", Plan: plan})
	if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "web.yaml:2:10: version: variable VERSION is not set") {
		t.Errorf("repair without variables: %v, want the unset VERSION", err)
	}
	// With the variable the plan is valid: no host has a recorded release,
	// so there is nothing to repair.
	_, err = cl.Repair(ctx, api.RepairRequest{PlanName: "web.yaml", Plan: plan, Vars: map[string]string{"VERSION": "2.0.1"}})
	if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "nothing to repair") {
		t.Errorf("repair with VERSION sent: %v, want nothing to repair", err)
	}
}

// tarball is a small release artifact.
func tarball(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	body := []byte("#!/bin/sh\n")
	if err := tw.WriteHeader(&tar.Header{Name: "bin/restart", Mode: 0o755, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
