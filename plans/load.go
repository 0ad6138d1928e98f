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
	strategyKeys = []string{"batch", "batches", "max_failures", "pause", "min_in_service", "allow_full_outage", "concurrency", "canary"}
	releaseKeys  = []string{"artifact", "strip_components", "path", "restart", "keep"}
	healthKeys   = []string{"http", "tcp", "command", "interval", "timeout", "healthy_threshold", "deadline", "min_healthy_time"}
	httpKeys     = []string{"url", "status", "body_contains"}
	tcpKeys      = []string{"port"}
	rollbackKeys = []string{"automatic"}
	hookKeys     = []string{"before_drain", "after_install", "after_activate", "after_enable"}
)

// Load reads the plan file at path and parses it (see Parse).
func Load(path string) (*Plan, error) { return LoadWith(path, Options{}, Files{}) }

// LoadWith reads the plan file at path and parses it with opts and files
// (see ParseWith).
func LoadWith(path string, opts Options, files Files) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return ParseWith(path, data, opts, files)
}

// Parse decodes and validates a plan. path is used in messages (exactly as
// given) and relative paths in the plan are resolved against its folder.
// On failure the error is an *Errors listing every problem found, and
// errors.Is(err, ErrInvalid) holds. On success every field of the Plan is
// set: defaults are applied and local paths are absolute.
func Parse(path string, data []byte) (*Plan, error) {
	return ParseWith(path, data, Options{}, Files{})
}

// ParseWith decodes a plan with opts and resolves the files it names as
// files says: Decode, then Draft.Resolve.
func ParseWith(path string, data []byte, opts Options, files Files) (*Plan, error) {
	return Decode(path, data, opts).Resolve(files)
}

// Options are what decoding takes from outside the plan's text: the values
// of its variables and of --set, and the environment its webhooks are sent
// from. None of them is a file (see Files).
type Options struct {
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

// Draft is a plan decoded from its text alone: the files it names
// (inventory, artifact, keys, known_hosts, the HAProxy socket) are paths,
// not yet read or looked at. Resolve makes it a Plan.
type Draft struct {
	l        *loader
	p        *Plan // nil when the text is not a plan at all
	resolved bool
}

// Decode decodes and checks a plan's text without touching any file (see
// Parse for path). Its problems are kept in the Draft: Err reports them,
// and Resolve reports them with its own.
func Decode(path string, data []byte, opts Options) *Draft {
	l := newLoader(path)
	l.opts = opts
	for _, k := range slices.Sorted(maps.Keys(opts.Set)) {
		if !slices.Contains(VarKeys, k) {
			l.errorf(setPos, "%s cannot be set from the command line; --set takes %s", k, orList(VarKeys))
		}
	}
	return &Draft{l: l, p: l.decode(data)}
}

// Err returns the problems decoding found (an *Errors), or nil.
func (d *Draft) Err() error { return d.l.result() }

// Reject records the caller's own problem with the value of key (a path
// such as "release.artifact"), at the position the key is written: a
// coordinator that finds the release archive by its digest reports a
// missing upload there. A key that did not decode has its problem already,
// and gets no second one.
func (d *Draft) Reject(key string, err error) {
	if at, ok := d.l.keys[key]; ok {
		d.l.errorf(at, "%s: %v", key, err)
	}
}

// Resolve reads the inventory, checks the files the plan names as files
// says, and runs the checks that need the hosts (the health URL of each,
// the batches against the balancer's backends). It returns the plan, or
// every problem found (decoding's, the caller's and its own) as *Errors.
// A Draft is resolved once: later calls return the same outcome.
func (d *Draft) Resolve(files Files) (*Plan, error) {
	l := d.l
	if d.p != nil && !d.resolved {
		d.resolved = true
		l.files = files
		l.resolve(d.p)
	}
	if err := l.result(); err != nil {
		return nil, err
	}
	return d.p, nil
}

// result is every problem found so far, sorted, or nil.
func (l *loader) result() error {
	if len(l.errs) == 0 {
		return nil
	}
	errs := slices.Clone(l.errs)
	errs.sortFor(l.path)
	return &errs
}

// loader decodes one plan, then resolves it (and reads its inventory).
type loader struct {
	sink
	path  string // as given
	dir   string // absolute folder of the plan
	opts  Options
	files Files
	refs  []fileRef      // the files the plan names, checked by resolve
	keys  map[string]pos // where the keys that name outside things are written (Plan.Keys)
	// relativeAt is where each gate relative to the old release is
	// written, for checkBaseline.
	relativeAt []pos
	later      fleetChecks // what decode leaves for when the hosts are known
	canaryPos  canaryAt    // where strategy.canary is written (checkCanary)
}

func newLoader(path string) *loader {
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return &loader{path: path, dir: dir, keys: map[string]pos{}}
}

// at records where key is written, for Plan.Keys.
func (l *loader) at(key string, p pos) { l.keys[key] = p }

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

// decode decodes the plan's text; it reads no file.
func (l *loader) decode(data []byte) *Plan {
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
	l.later.hasLB = l.loadBalancer(top, p)
	l.later.hostsOK = l.hosts(top, p, l.later.hasLB)
	l.ssh(top, p)
	l.later.batchAt, l.later.minAt = l.strategy(top, p)
	l.release(top, p)
	l.health(top, p)
	if rb, ok := top.OptMapping("rollback", rollbackKeys...); ok {
		p.Rollback.Automatic = true
		if rb != nil {
			p.Rollback.Automatic, _ = rb.Boolean("automatic", true)
		}
	}
	l.secrets(top, p)
	l.notify(top, p)
	l.analysis(top, p)
	if hk, ok := top.OptMapping("hooks", hookKeys...); ok && hk != nil {
		p.Hooks.BeforeDrain, _ = hk.StrList("before_drain", "shell commands")
		p.Hooks.AfterInstall, _ = hk.StrList("after_install", "shell commands")
		p.Hooks.AfterActivate, _ = hk.StrList("after_activate", "shell commands")
		p.Hooks.AfterEnable, _ = hk.StrList("after_enable", "shell commands")
	}
	return p
}
