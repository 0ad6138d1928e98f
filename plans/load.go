package plans

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"
)

// Defaults applied by Load.
const (
	DefaultConnectTimeout   = 10 * time.Second
	DefaultCommandTimeout   = 5 * time.Minute
	DefaultDrainTimeout     = 30 * time.Second
	DefaultEnableTimeout    = 30 * time.Second
	DefaultKeep             = 5
	DefaultInterval         = 1 * time.Second
	DefaultTimeout          = 2 * time.Second
	DefaultHealthyThreshold = 3
	DefaultDeadline         = 60 * time.Second
	DefaultHTTPStatus       = 200
	DefaultSSHPort          = "22"
	// DefaultConcurrency bounds the hosts set up, checked or pruned at once
	// outside the batches. Sized for a 2-core coordinator and fleets of a
	// few hundred hosts: 32 SSH handshakes in flight keep both cores busy
	// without piling up memory, descriptors or sshd start-ups.
	DefaultConcurrency = 32
)

// safeNameRE is what a plan name, a version and a host name must match: they
// become directory names and keys in the replicated state.
var safeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

const safeNameRule = `letters, digits and . _ + -, starting with a letter or digit, at most 128 characters`

// IsSafeName reports whether s may be used as a plan name, a version or a
// host name: it matches ^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$ and is not "." or "..".
func IsSafeName(s string) bool {
	return s != "." && s != ".." && safeNameRE.MatchString(s)
}

var (
	lbNameRE   = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
	hostnameRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$`)
	percentRE  = regexp.MustCompile(`^\s*([0-9]+)\s*%\s*$`)
	countRE    = regexp.MustCompile(`^\s*[0-9]+\s*$`)
)

// Top-level and section keys, in the order the format documents them.
var (
	topKeys      = []string{"name", "version", "hosts", "inventory", "ssh", "load_balancer", "strategy", "release", "health", "rollback", "hooks", "secrets", "notify", "analysis"}
	hostKeys     = []string{"name", "address", "lb_server", "transport"}
	sshKeys      = []string{"user", "identity_file", "known_hosts", "host_key_checking", "connect_timeout", "command_timeout", "session_per_command"}
	lbKeys       = []string{"haproxy", "drain_timeout", "on_drain_timeout", "enable_timeout"}
	haproxyKeys  = []string{"socket", "address"}
	strategyKeys = []string{"batch", "batches", "max_failures", "pause", "min_in_service", "allow_full_outage", "concurrency"}
	releaseKeys  = []string{"artifact", "strip_components", "path", "restart", "keep"}
	healthKeys   = []string{"http", "tcp", "command", "interval", "timeout", "healthy_threshold", "deadline", "min_healthy_time"}
	httpKeys     = []string{"url", "status", "body_contains"}
	tcpKeys      = []string{"port"}
	rollbackKeys = []string{"automatic"}
	hookKeys     = []string{"before_drain", "after_install", "after_activate", "after_enable"}
)

// Load reads the plan file at path and parses it (see Parse).
func Load(path string) (*Plan, error) { return LoadWith(path, Options{}) }

// LoadWith reads the plan file at path and parses it with opts (see ParseWith).
func LoadWith(path string, opts Options) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return ParseWith(path, data, opts)
}

// Parse decodes and validates a plan. path is used in messages (exactly as
// given) and relative paths in the plan are resolved against its folder.
// On failure the error is an *Errors listing every problem found, and
// errors.Is(err, ErrInvalid) holds. On success every field of the Plan is
// set: defaults are applied and local paths are absolute.
func Parse(path string, data []byte) (*Plan, error) {
	return ParseWith(path, data, Options{})
}

// Options change where Parse looks for the files a plan names, for plans
// read on one machine and run on another (a coordinator cluster).
type Options struct {
	// Artifact, when set, is the file to use as release.artifact instead of
	// the one the plan names: a coordinator's copy of the archive the
	// request named by its digest, found by the caller before parsing.
	Artifact *ArtifactFile
	// SkipArtifact keeps release.artifact as written (resolved against the
	// plan's folder) without looking at it: a repair installs nothing.
	SkipArtifact bool
	// SkipCoordinatorFiles leaves unchecked the files that the coordinators
	// read (ssh.identity_file): a CLI talking to a cluster cannot see them.
	SkipCoordinatorFiles bool
	// Files, when set, is the only set of coordinator files the plan may
	// name: a cluster sets it from its operator's --plan-files (see
	// AllowedFiles). nil (the local CLI) allows any file.
	Files *AllowedFiles
	// Env looks up the ${NAME} variables of version and release.artifact
	// (VarKeys). nil sets none: only ${NAME:-default} resolves. The CLI
	// passes os.LookupEnv; a coordinator passes only the values the CLI
	// sent, never its own environment.
	Env func(name string) (string, bool)
	// SenderEnv, when set, is the environment of the process that will
	// send the plan's webhooks: a notify.webhooks[].secret_env it does not
	// set is an error. Sender names that process in the message.
	SenderEnv func(name string) (string, bool)
	Sender    string
	// Set replaces the values of VarKeys (the CLI's --set KEY=VALUE),
	// present in the file or not. A relative release.artifact given here is
	// relative to the working directory, not to the plan.
	Set map[string]string
}

// ParseWith is Parse with Options.
func ParseWith(path string, data []byte, opts Options) (*Plan, error) {
	l := newLoader(path)
	l.opts = opts
	for _, k := range slices.Sorted(maps.Keys(opts.Set)) {
		if !slices.Contains(VarKeys, k) {
			l.errorf(setPos, "%s cannot be set from the command line; --set takes %s", k, orList(VarKeys))
		}
	}
	p := l.load(data)
	if len(l.errs) > 0 {
		l.errs.sortFor(path)
		errs := l.errs
		return nil, &errs
	}
	return p, nil
}

// ArtifactFile is the release artifact a caller found for a plan, or why
// it could not (reported at release.artifact, with its position).
type ArtifactFile struct {
	Path string
	Err  error
}

// loader decodes one plan (and its inventory).
type loader struct {
	sink
	path string // as given
	dir  string // absolute folder of the plan
	opts Options
	refs []fileRef // the files the plan names, checked after decoding
	// relativeAt is where each gate relative to the old release is
	// written, for checkBaseline.
	relativeAt []pos
}

func newLoader(path string) *loader {
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return &loader{path: path, dir: dir}
}

// hostAt remembers where a host came from, for cross-host checks.
type hostAt struct {
	path    string // hosts[i]
	nameP   pos
	addrP   pos
	lbP     pos
	hasName bool
	hasAddr bool
	hasLB   bool
}

func (l *loader) load(data []byte) *Plan {
	vs := &vars{env: l.opts.Env, set: l.opts.Set}
	body, d, ok := parseYAML(&l.sink, l.path, data, "plan", vs)
	if !ok {
		return nil
	}
	origin := pos{File: l.path, Line: 1, Col: 1}
	if body == nil {
		l.errorf(origin, "plan is empty; expected a mapping with name, version, hosts, release and health")
		return nil
	}
	root, ok := d.Value(body, "")
	if !ok {
		return nil
	}
	if root.K != kMap {
		l.errorf(root.P, "plan must be a mapping (name, version, hosts, release, health, ...), got %s", root)
		return nil
	}
	top, _ := d.Mapping(root, "", topKeys...)
	top.P = origin // a missing top-level key is reported at 1:1

	p := &Plan{Path: l.path, Dir: l.dir}
	defer func() { p.Vars = vs.used }()

	if s, sp, ok := top.NonEmpty("name", true, "one running deployment per name"); ok {
		if IsSafeName(s) {
			p.Name = s
		} else {
			l.errorf(sp, "name: must be a safe name (%s), got %s", safeNameRule, quote(s))
		}
	}
	if s, sp, ok := top.NonEmpty("version", true, `the release being rolled out, e.g. "2.0.1"`); ok {
		if IsSafeName(s) {
			p.Version = s
		} else {
			l.errorf(sp, "version: must be a safe directory name (%s), got %s", safeNameRule, quote(s))
		}
	}

	// The balancer first: it decides whether hosts need lb_server.
	hasLB := l.loadBalancer(top, p)
	hostsOK := l.hosts(top, p, hasLB)
	l.ssh(top, p)
	batchAt, minAt := l.strategy(top, p)
	l.release(top, p)
	l.health(top, p, hostsOK)
	if rb, ok := top.OptMapping("rollback", rollbackKeys...); ok {
		p.Rollback.Automatic = true
		if rb != nil {
			p.Rollback.Automatic, _ = rb.Boolean("automatic", true)
		}
	}
	l.secrets(top, p)
	l.notify(top, p)
	l.analysis(top, p)
	l.resolveFiles()
	if hk, ok := top.OptMapping("hooks", hookKeys...); ok && hk != nil {
		p.Hooks.BeforeDrain, _ = hk.StrList("before_drain", "shell commands")
		p.Hooks.AfterInstall, _ = hk.StrList("after_install", "shell commands")
		p.Hooks.AfterActivate, _ = hk.StrList("after_activate", "shell commands")
		p.Hooks.AfterEnable, _ = hk.StrList("after_enable", "shell commands")
	}
	// A check across keys, on a plan that decoded cleanly only: on a
	// half-decoded one it would be noise.
	if len(l.errs) == 0 {
		l.checkOutage(p, batchAt, minAt)
		l.checkBaseline(p)
	}
	return p
}
