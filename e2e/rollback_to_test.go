package e2e

import (
	"strings"
	"testing"
)

// drover rollback --to VERSION: after v1, v2, v3, every host goes back to
// v1 (kept on the hosts: release.keep 3) and into rotation, under load
// without a failed request; a release no host keeps is refused, listing
// the releases kept, with nothing changed.
func TestRollbackTo(t *testing.T) {
	s := newSession(t, 3)
	for _, v := range []string{"v1", "v2", "v3"} {
		if code, d := s.run("deploy", s.plan(v, false, "1")); code != 0 {
			t.Fatalf("deploy %s: exit %d\n%s", v, code, d.stdout.text())
		}
	}
	s.expectAllOn("v3")

	code, out, errOut := s.text(nil, "rollback", "--to", "v9", "--data-dir", s.dataDir)
	t.Logf("drover rollback --to v9: exit %d\n%s%s", code, out, errOut)
	if code != 2 || !strings.Contains(errOut, "rollback to v9: web1, web2, web3: release not kept") || !strings.Contains(errOut, "releases kept on every host: v1, v2, v3") {
		t.Errorf("rollback --to v9: exit %d, want 2 and a message listing v1, v2, v3", code)
	}
	s.expectAllOn("v3")

	res, maxOut := s.underLoad(1, func() {
		if code, d := s.run("rollback", "--to", "v1"); code != 0 {
			t.Fatalf("rollback --to v1: exit %d\n%s%s", code, d.stdout.text(), d.stderr.String())
		}
	})
	t.Logf("rollback --to v1 under load: %d requests, %d failed, at most %d out of rotation", res.Requests, res.Failures, maxOut)
	s.expectAllOn("v1")
}
