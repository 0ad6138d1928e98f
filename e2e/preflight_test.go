package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFleetWideCauseNamesThePlanKey: a mistake in the plan that stops
// every host in preflight (a wrong HAProxy socket, a known_hosts without
// the hosts' keys) is one line of the CLI's stderr, at the plan key's
// FILE:LINE:COL, with the hosts it stopped; exit code 2, nothing touched.
func TestFleetWideCauseNamesThePlanKey(t *testing.T) {
	s := newSession(t, 4)
	if code, d := s.run("deploy", s.plan("v1", false, "2")); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stderr.String())
	}
	emptyKH := filepath.Join(s.lab.Dir, "empty_known_hosts")
	if err := os.WriteFile(emptyKH, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(s.lab.Dir, "no-haproxy", "admin.sock")
	for _, tc := range []struct {
		name     string
		key      string // the key whose line the value is on
		old, new string // the plan's value, and the mistake
		cause    string
	}{
		{"a wrong HAProxy socket", "load_balancer.haproxy.socket", s.lab.HAProxySocket, missing,
			"dial unix " + missing + ": connect: no such file or directory"},
		{"a known_hosts without the hosts' keys", "ssh.known_hosts", s.lab.KnownHosts, emptyKH,
			"host key unknown: " + emptyKH + " has no entry for these hosts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			good, err := os.ReadFile(s.plan("v2", false, "2"))
			if err != nil {
				t.Fatal(err)
			}
			// Where the mistake is written, as an editor counts.
			var line, col int
			for i, l := range strings.Split(string(good), "\n") {
				if c := strings.Index(l, tc.old); c >= 0 && line == 0 {
					line, col = i+1, c+1
				}
			}
			if line == 0 {
				t.Fatalf("%s is not in the plan:\n%s", tc.old, good)
			}
			plan := filepath.Join(s.lab.Dir, "mistake.yaml")
			if err := os.WriteFile(plan, []byte(strings.Replace(string(good), tc.old, tc.new, 1)), 0o600); err != nil {
				t.Fatal(err)
			}

			// What the operator sees: the text output, both streams.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := s.lab.Command(ctx, droverBin, "deploy", plan, "--data-dir", s.dataDir)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			code := 0
			var ee *exec.ExitError
			if err := cmd.Run(); errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			t.Logf("exit %d; stdout %d lines, stderr %d lines:\n%s%s", code,
				strings.Count(stdout.String(), "\n"), strings.Count(stderr.String(), "\n"), stdout.String(), stderr.String())
			if code != 2 {
				t.Errorf("exit %d, want 2 (refused in preflight)", code)
			}
			want := fmt.Sprintf("%s:%d:%d: %s: %s", plan, line, col, tc.key, tc.cause)
			var mentions []string
			for _, l := range strings.Split(stdout.String()+stderr.String(), "\n") {
				if strings.Contains(l, tc.new) {
					mentions = append(mentions, strings.TrimSpace(l))
				}
			}
			if len(mentions) != 1 || !strings.HasPrefix(mentions[0], want) || !strings.HasSuffix(mentions[0], "(web1, web2, web3, web4: 4 hosts)") {
				t.Errorf("lines naming %s:\n%s\nwant one, starting %q and ending with the 4 hosts", tc.new, strings.Join(mentions, "\n"), want)
			}
			s.expectAllOn("v1")
		})
	}
}
