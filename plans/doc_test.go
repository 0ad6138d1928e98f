package plans

import (
	"os"
	"strings"
	"testing"
)

// docs/plan.md documents every key the decoder accepts: a key added to the
// decoder without a row there fails here.
func TestPlanReferenceNamesEveryKey(t *testing.T) {
	b, err := os.ReadFile("../docs/plan.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	row := func(key string) bool { return strings.Contains(doc, "\n| `"+key+"` |") }
	for _, k := range topKeys {
		if !row(k) && !strings.Contains(doc, "\n## "+k+"\n") && !strings.Contains(doc, "\n## "+k+" ") {
			t.Errorf("docs/plan.md has no row or section for %s", k)
		}
	}
	for _, set := range []struct {
		prefix string
		keys   []string
	}{
		{"hosts[].", hostKeys}, {"", sshKeys}, {"", lbKeys}, {"haproxy.", haproxyKeys},
		{"", strategyKeys}, {"", releaseKeys}, {"", healthKeys}, {"http.", httpKeys},
		{"tcp.", tcpKeys}, {"", rollbackKeys}, {"", hookKeys},
		{"notify.", notifyKeys}, {"webhooks[].", webhookKeys},
		{"canary.", canaryKeys},
		{"", analysisKeys}, {"prometheus.", promServerKeys}, {"gates[].", gateKeys}, {"gates[].prometheus.", promGateKeys},
	} {
		for _, k := range set.keys {
			if k == "http" || k == "tcp" || k == "prometheus" || k == "gates" || k == "canary" {
				continue // their keys have rows of their own
			}
			if !row(set.prefix + k) {
				t.Errorf("docs/plan.md has no row for %s%s", set.prefix, k)
			}
		}
	}
}
