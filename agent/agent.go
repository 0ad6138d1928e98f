// Package agent is the host agent daemon (`drover agent run`): a small
// process on a VM that dials out to the coordinator cluster, so hosts behind
// NAT work, follows the leader, and carries out the actions of package wire
// (run a command, write a file, make a health check from the host).
//
// The invariants it keeps, and why:
//
//   - Fencing. The highest Raft term the agent has accepted an action under
//     is persisted in state_dir/term before that action runs; an action
//     with an older term is rejected unrun. A deposed leader that still
//     believes it leads can therefore never act on a host after its
//     successor did, even across agent restarts.
//   - Nothing is reported done that may be half done. Before an action
//     runs, an entry is written (and fsynced) in state_dir/journal; it is
//     removed only once the action's Result has been sent. An entry left
//     over (the agent restarted, or the connection dropped and the action
//     was killed) is reported in the next Hello.Lost, never as done.
//   - The key never leaves the host. Enrollment sends the public key with a
//     single-use join token and receives a certificate; from then on the
//     agent authenticates with mutual TLS, and the token is deleted.
//
// An action runs only while the connection that carried it is up: when it
// drops, running actions are killed and reported lost on the next Hello.
// That is simpler than buffering results across connections, and the
// engine treats a lost action like a failed one.
package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
)

// Errors callers test with errors.Is. Both are permanent: retrying cannot
// fix them, an operator must act.
var (
	// ErrRefused means the coordinators refused enrollment: the join token
	// was already used, expired or unknown, or the request was invalid.
	// The error's text carries the coordinator's reason.
	ErrRefused = errors.New("enrollment refused")
	// ErrNotEnrolled means the state dir has no certificate and there is no
	// join token to get one with.
	ErrNotEnrolled = errors.New("not enrolled")
)

// Files in the state dir.
const (
	keyFile     = "agent.key" // the agent's private key: made once, kept forever
	certFile    = "agent.crt" // its certificate, from enrollment
	termFile    = "term"      // the highest term accepted (fencing)
	journalDir  = "journal"   // one entry per action in progress
	stateMode   = 0o700
	secretMode  = 0o600
	maxNameSize = 64
)

// Config is the agent's config file, written by `drover agent install`:
//
//	name: web1
//	coordinators: ["10.200.0.5:7443", "10.200.0.6:7443"]
//	ca: /opt/drover-agent/ca.crt          # the cluster CA (to verify coordinators)
//	state_dir: /opt/drover-agent/state    # key, certificate, highest term, journal
//	token_file: /opt/drover-agent/join.token   # single-use join token; deleted after enrollment
type Config struct {
	// Name is the agent's name in the cluster: the host's name in plans
	// and the common name of its certificate.
	Name string `yaml:"name"`
	// Coordinators are API addresses (host:port) of coordinators. Any one
	// will do: a follower answers with the leader's address.
	Coordinators []string `yaml:"coordinators"`
	// CA is the cluster CA certificate: the only authority coordinators are
	// verified against.
	CA string `yaml:"ca"`
	// StateDir holds the key, the certificate, the highest term and the
	// journal. It must survive restarts: losing it loses the fencing term.
	StateDir string `yaml:"state_dir"`
	// TokenFile holds the single-use join token. It is needed only until
	// enrollment succeeds, and deleted then.
	TokenFile string `yaml:"token_file"`

	// Version is the agent's version, reported in Hello.
	Version string `yaml:"-"`
	// Log receives the agent's logs (slog.Default() when nil). Tokens and
	// keys are never logged.
	Log *slog.Logger `yaml:"-"`
}

// LoadConfig reads an agent config file. Decoding is strict: an unknown
// key is an error with its line and column, since a misspelt key silently
// ignored would leave the agent with a default nobody chose. Relative
// paths are taken against the file's folder, so that the file means the
// same whatever the daemon's working directory.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("agent config: %w", err)
	}
	var cfg Config
	if strings.TrimSpace(string(data)) == "" {
		return Config{}, fmt.Errorf("agent config %s: the file is empty", path)
	}
	if err := yaml.UnmarshalWithOptions(data, &cfg, yaml.Strict()); err != nil {
		return Config{}, fmt.Errorf("agent config %s", yamlError(path, err))
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return Config{}, fmt.Errorf("agent config %s: %w", path, err)
	}
	for _, p := range []*string{&cfg.CA, &cfg.StateDir, &cfg.TokenFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if err := cfg.validate(); err != nil {
		return Config{}, fmt.Errorf("agent config %s: %w", path, err)
	}
	return cfg, nil
}

// yamlError turns go-yaml's "[3:1] unknown field "caa"" into
// "FILE:3:1: unknown field "caa"", the form editors jump to.
func yamlError(path string, err error) string {
	msg := yaml.FormatError(err, false, false)
	if strings.HasPrefix(msg, "[") {
		if pos, rest, ok := strings.Cut(msg[1:], "] "); ok && !strings.ContainsAny(pos, " \n") {
			return path + ":" + pos + ": " + rest
		}
	}
	return path + ": " + msg
}

// validate reports every problem at once, so that an operator fixes the
// file in one go.
func (c *Config) validate() error {
	var errs []error
	if err := checkName(c.Name); err != nil {
		errs = append(errs, fmt.Errorf("name: %w", err))
	}
	if len(c.Coordinators) == 0 {
		errs = append(errs, errors.New("coordinators: at least one address (host:port) is required"))
	}
	for i, a := range c.Coordinators {
		if err := checkAddr(a); err != nil {
			errs = append(errs, fmt.Errorf("coordinators[%d]: %w", i, err))
		}
	}
	if c.CA == "" {
		errs = append(errs, errors.New("ca: the cluster CA certificate file is required"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("state_dir: a directory for the agent's key, certificate and journal is required"))
	}
	return errors.Join(errs...)
}

// checkName applies the certificate name rules of internal/pki here, so
// that a bad name fails at startup rather than as a refused enrollment.
func checkName(name string) error {
	if name == "" {
		return errors.New("required")
	}
	if len(name) > maxNameSize {
		return fmt.Errorf("%q is longer than %d characters", name, maxNameSize)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%q: use letters, digits, '-', '_' and '.' only", name)
		}
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("%q may not start with %q", name, name[:1])
	}
	return nil
}

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: %q is not a port", addr, port)
	}
	return nil
}

func (c *Config) path(name string) string { return filepath.Join(c.StateDir, name) }

func (c *Config) logger() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}
