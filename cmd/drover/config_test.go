package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Where the data dir and the cluster settings come from: a flag, then the
// environment, then the config file, then the defaults (the user's state
// folder; an earlier ./.drover when there is one).
func TestConfigPrecedence(t *testing.T) {
	home := t.TempDir()
	work := t.TempDir()
	cfgDir := filepath.Join(home, ".config", "drover")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	config := "server: 10.0.0.5:7443,10.0.0.6:7443\nca: tls/ca.crt\ncert: ~/ops.crt\nkey: /etc/drover/ops.key\ndata_dir: state\noutput: json\n"
	for _, tc := range []struct {
		name      string
		config    string
		args      []string
		env       map[string]string
		legacy    bool // a ./.drover in the working directory
		dataDir   string
		server    string
		ca        string
		output    string
		errSubstr string
	}{
		{name: "no config: the user's state folder", dataDir: filepath.Join(home, ".local", "state", "drover"), output: "auto"},
		{name: "XDG_STATE_HOME", env: map[string]string{"XDG_STATE_HOME": filepath.Join(home, "st")}, dataDir: filepath.Join(home, "st", "drover"), output: "auto"},
		{name: "an earlier ./.drover", legacy: true, dataDir: ".drover", output: "auto"},
		{name: "the config file", config: config, dataDir: filepath.Join(cfgDir, "state"), server: "10.0.0.5:7443,10.0.0.6:7443",
			ca: filepath.Join(cfgDir, "tls", "ca.crt"), output: "json"},
		{name: "the environment beats the file", config: config,
			env:     map[string]string{"DROVER_DATA_DIR": "/var/tmp/d", "DROVER_ADDR": "10.0.0.9:7443", "DROVER_CA": "/ca.crt"},
			dataDir: "/var/tmp/d", server: "", ca: "", output: "json"},
		{name: "flags beat both", config: config, args: []string{"--data-dir", "/flag", "--server", "10.0.0.1:1", "-o", "text"},
			env: map[string]string{"DROVER_DATA_DIR": "/var/tmp/d"}, dataDir: "/flag", server: "10.0.0.1:1", ca: filepath.Join(cfgDir, "tls", "ca.crt"), output: "text"},
		{name: "an unknown key", config: "servers: x\n", errSubstr: `unknown field "servers"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HOME", home)
			for _, k := range []string{"XDG_CONFIG_HOME", "XDG_STATE_HOME", "DROVER_CONFIG", "DROVER_DATA_DIR", "DROVER_ADDR", "DROVER_CA", "DROVER_CLIENT_CERT", "DROVER_CLIENT_KEY", "DROVER_TOKEN"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			os.Remove(filepath.Join(cfgDir, "config.yaml"))
			if tc.config != "" {
				if err := os.WriteFile(filepath.Join(cfgDir, "config.yaml"), []byte(tc.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			dir := filepath.Join(work, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.legacy {
				os.Mkdir(filepath.Join(dir, ".drover"), 0o700)
			}
			t.Chdir(dir)
			g := &globalFlags{}
			root := newRoot(g)
			root.SetArgs(append(tc.args, "version"))
			root.SetOut(io.Discard)
			root.SetErr(io.Discard)
			err := root.Execute()
			if tc.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSubstr) {
					t.Fatalf("err = %v, want %q", err, tc.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.dataDir != tc.dataDir || g.cluster.server != tc.server || g.cluster.caFile != tc.ca || g.output != tc.output {
				t.Errorf("data dir %q server %q ca %q output %q\nwant     %q        %q    %q    %q",
					g.dataDir, g.cluster.server, g.cluster.caFile, g.output, tc.dataDir, tc.server, tc.ca, tc.output)
			}
			if tc.legacy != (g.dataDirNote != "") {
				t.Errorf("note %q", g.dataDirNote)
			}
		})
	}
}
