package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	p := writeConfig(t, `name: web1
coordinators: ["10.200.0.5:7443", "coord2.example:7443"]
ca: ca.crt
state_dir: /opt/drover-agent/state
token_file: secrets/join.token
`)
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	if cfg.Name != "web1" || !slices.Equal(cfg.Coordinators, []string{"10.200.0.5:7443", "coord2.example:7443"}) ||
		cfg.CA != filepath.Join(dir, "ca.crt") || cfg.StateDir != "/opt/drover-agent/state" ||
		cfg.TokenFile != filepath.Join(dir, "secrets", "join.token") {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"unknown key", "name: web1\ncoordinators: [\"a:1\"]\nca: x\nstate_dir: s\ntoken: t\n", `:5:1: unknown field "token"`},
		{"wrong type", "name: web1\ncoordinators: 7443\n", ":2:15:"},
		{"empty", "\n", "the file is empty"},
		{"missing", "name: web1\n", "coordinators: at least one address"},
		{"bad address", "name: web1\ncoordinators: [\"10.0.0.5\"]\nca: x\nstate_dir: s\n", `coordinators[0]: "10.0.0.5" is not host:port`},
		{"bad name", "name: web/1\ncoordinators: [\"a:1\"]\nca: x\nstate_dir: s\n", "name: \"web/1\": use letters"},
		{"no ca or state", "name: web1\ncoordinators: [\"a:1\"]\n", "ca: the cluster CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.text)
			_, err := LoadConfig(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want it to name %s and contain %q", err, p, tc.want)
			}
		})
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}
