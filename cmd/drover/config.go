package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"
)

// fileConfig is the operator's defaults, ~/.config/drover/config.yaml
// ($XDG_CONFIG_HOME/drover/config.yaml, or the file DROVER_CONFIG names).
// A flag beats an environment variable, which beats the file. Relative
// paths are relative to the file's folder; ~ is the home folder.
type fileConfig struct {
	Server    string `yaml:"server"`     // like --server / DROVER_ADDR
	CA        string `yaml:"ca"`         // like --ca / DROVER_CA
	Cert      string `yaml:"cert"`       // like --cert / DROVER_CLIENT_CERT
	Key       string `yaml:"key"`        // like --key / DROVER_CLIENT_KEY
	TokenFile string `yaml:"token_file"` // like --token-file (DROVER_TOKEN holds a token itself)
	DataDir   string `yaml:"data_dir"`   // like --data-dir / DROVER_DATA_DIR
	Output    string `yaml:"output"`     // like --output
}

// configPath is where the config file is looked for.
func configPath() string {
	if p := os.Getenv("DROVER_CONFIG"); p != "" {
		return p
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "drover", "config.yaml")
}

// loadConfig reads the config file; a missing one is an empty config
// (unless DROVER_CONFIG names it). Unknown keys are errors, with where.
func loadConfig(path string) (fileConfig, error) {
	var c fileConfig
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && os.Getenv("DROVER_CONFIG") == "" {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if err := yaml.UnmarshalWithOptions(b, &c, yaml.Strict()); err != nil {
		return c, fmt.Errorf("config %s: %s", path, yaml.FormatError(err, false, false))
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&c.CA, &c.Cert, &c.Key, &c.TokenFile, &c.DataDir} {
		*p = expandPath(*p, dir)
	}
	return c, nil
}

// expandPath makes p absolute: ~/x under the home folder, a relative path
// under dir.
func expandPath(p, dir string) string {
	switch {
	case p == "":
		return ""
	case p == "~" || strings.HasPrefix(p, "~/"):
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
		return p
	case filepath.IsAbs(p):
		return p
	}
	return filepath.Join(dir, p)
}

// legacyDataDir is where drover kept its data before it followed the
// user: a .drover folder in the working directory.
const legacyDataDir = ".drover"

// defaultDataDir is the embedded coordinator's data dir when neither
// --data-dir, DROVER_DATA_DIR nor the config file says: ./.drover if an
// earlier drover made one here (note says so), else the user's state
// folder, so that every terminal and folder sees the same deployments and
// the same host locks.
func defaultDataDir() (dir, note string) {
	if st, err := os.Stat(legacyDataDir); err == nil && st.IsDir() {
		return legacyDataDir, "using ./.drover (an earlier drover's data dir here); the default is now the user's, " + userDataDir() + ": move it there or pass --data-dir"
	}
	return userDataDir(), ""
}

// userDataDir is $XDG_STATE_HOME/drover or ~/.local/state/drover.
func userDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "drover")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "drover")
	}
	return legacyDataDir
}

// applyConfig fills what the command line and the environment left unset
// from the config file, then resolves the data dir.
func applyConfig(cmd *cobra.Command, g *globalFlags) error {
	c, err := loadConfig(configPath())
	if err != nil {
		return withCode(exitUsage, err)
	}
	set := func(flag *string, env, v string) {
		if *flag == "" && os.Getenv(env) == "" {
			*flag = v
		}
	}
	set(&g.cluster.server, "DROVER_ADDR", c.Server)
	set(&g.cluster.caFile, "DROVER_CA", c.CA)
	set(&g.cluster.certFile, "DROVER_CLIENT_CERT", c.Cert)
	set(&g.cluster.keyFile, "DROVER_CLIENT_KEY", c.Key)
	set(&g.cluster.tokenFile, "DROVER_TOKEN", c.TokenFile)
	if f := cmd.Flags().Lookup("output"); f != nil && !f.Changed && c.Output != "" {
		g.output = c.Output
	}
	if g.dataDir == "" {
		switch {
		case os.Getenv("DROVER_DATA_DIR") != "":
			g.dataDir = os.Getenv("DROVER_DATA_DIR")
		case c.DataDir != "":
			g.dataDir = c.DataDir
		default:
			var note string
			g.dataDir, note = defaultDataDir()
			g.dataDirNote = note
		}
	}
	return nil
}
