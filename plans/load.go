package plans

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
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
	topKeys      = []string{"name", "version", "hosts", "inventory", "ssh", "load_balancer", "strategy", "release", "health", "rollback", "hooks", "secrets"}
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
	// Artifact, when set, replaces the local check of release.artifact: it
	// is given the path as written (resolved against the plan's folder)
	// and returns the file to use; its error is reported at the key.
	Artifact func(path string) (string, error)
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

// loader decodes one plan (and its inventory).
type loader struct {
	sink
	path string // as given
	dir  string // absolute folder of the plan
	opts Options
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
	body, d, ok := parseYAML(&l.sink, l.path, data, "plan")
	if !ok {
		return nil
	}
	d.vars = &vars{env: l.opts.Env, set: l.opts.Set}
	origin := pos{file: l.path, line: 1, col: 1}
	if body == nil {
		l.errorf(origin, "plan is empty; expected a mapping with name, version, hosts, release and health")
		return nil
	}
	root, ok := d.value(body, "")
	if !ok {
		return nil
	}
	if root.k != kMap {
		l.errorf(root.p, "plan must be a mapping (name, version, hosts, release, health, ...), got %s", root)
		return nil
	}
	top, _ := d.mapping(root, "", topKeys...)
	top.p = origin // a missing top-level key is reported at 1:1

	p := &Plan{Path: l.path, Dir: l.dir}
	defer func() { p.Vars = d.vars.used }()

	if s, sp, ok := top.nonEmpty("name", true, "one running deployment per name"); ok {
		if IsSafeName(s) {
			p.Name = s
		} else {
			l.errorf(sp, "name: must be a safe name (%s), got %s", safeNameRule, quote(s))
		}
	}
	if s, sp, ok := top.nonEmpty("version", true, `the release being rolled out, e.g. "2.0.1"`); ok {
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
	if rb, ok := top.optMapping("rollback", rollbackKeys...); ok {
		p.Rollback.Automatic = true
		if rb != nil {
			p.Rollback.Automatic, _ = rb.boolean("automatic", true)
		}
	}
	l.secrets(top, p)
	if hk, ok := top.optMapping("hooks", hookKeys...); ok && hk != nil {
		p.Hooks.BeforeDrain, _ = hk.strList("before_drain", "shell commands")
		p.Hooks.AfterInstall, _ = hk.strList("after_install", "shell commands")
		p.Hooks.AfterActivate, _ = hk.strList("after_activate", "shell commands")
		p.Hooks.AfterEnable, _ = hk.strList("after_enable", "shell commands")
	}
	// A check across keys, on a plan that decoded cleanly only: on a
	// half-decoded one it would be noise.
	if len(l.errs) == 0 {
		l.checkOutage(p, batchAt, minAt)
	}
	return p
}

// ---- hosts ----

// hosts decodes the inline hosts or the inventory; it reports whether every
// host decoded cleanly (so that per-host checks such as the health URL are
// meaningful).
func (l *loader) hosts(top *mapping, p *Plan, hasLB bool) bool {
	if top.has("inventory") {
		if top.has("hosts") {
			l.errorf(top.keyPos("inventory"), "inventory: set either hosts or inventory, not both")
			return false
		}
		file, fp, ok := top.nonEmpty("inventory", false, "")
		if !ok {
			return false
		}
		resolved, msg := l.localPath(file)
		if msg == "" {
			msg = l.coordinatorFile(resolved)
		}
		if msg != "" {
			l.errorf(fp, "inventory: %s", msg)
			return false
		}
		// Problems inside the inventory are reported against the file as
		// the operator would name it: relative to where the plan was named.
		shown := file
		if strings.HasPrefix(file, "~") {
			shown = resolved
		} else if !filepath.IsAbs(file) {
			shown = filepath.Join(filepath.Dir(l.path), file)
		}
		data, err := os.ReadFile(resolved)
		if err != nil {
			l.errorf(fp, "inventory: %s", fileProblem(resolved, err))
			return false
		}
		p.Inventory = resolved
		body, d, ok := parseYAML(&l.sink, shown, data, "inventory")
		if !ok {
			return false
		}
		if body == nil {
			l.errorf(pos{file: shown, line: 1, col: 1}, "hosts: must list at least one host, got an empty file")
			return false
		}
		v, ok := d.value(body, "hosts")
		if !ok {
			return false
		}
		return l.hostList(d, v, p, hasLB)
	}
	v, present, ok := top.get("hosts")
	if !present {
		top.missing("hosts", "a list of hosts, or inventory: FILE")
		return false
	}
	if !ok {
		return false
	}
	return l.hostList(top.d, v, p, hasLB)
}

func (l *loader) hostList(d *doc, v value, p *Plan, hasLB bool) bool {
	if v.k == kNull || v.k == kSeq && len(v.n.(*ast.SequenceNode).Values) == 0 {
		l.errorf(v.p, "hosts: must list at least one host, got %s", v)
		return false
	}
	if v.k != kSeq {
		l.errorf(v.p, "hosts: must be a list of hosts (each with name and address), got %s", v)
		return false
	}
	var at []hostAt
	for i, e := range v.n.(*ast.SequenceNode).Values {
		hp := index("hosts", i)
		ev, ok := d.value(e, hp)
		if !ok {
			continue
		}
		if ev.k != kMap {
			l.errorf(ev.p, "%s: must be a mapping with name and address, got %s", hp, ev)
			continue
		}
		m, _ := d.mapping(ev, hp, hostKeys...)
		h := Host{Transport: TransportSSH}
		ha := hostAt{path: hp}
		if s, sp, ok := m.nonEmpty("name", true, "a short unique name like web1"); ok {
			ha.nameP = sp
			if IsSafeName(s) {
				h.Name, ha.hasName = s, true
			} else {
				l.errorf(sp, "%s.name: must be a safe name (%s), got %s", hp, safeNameRule, quote(s))
			}
		}
		if s, sp, ok := m.nonEmpty("address", true, "host or host:port"); ok {
			ha.addrP = sp
			if addr, msg := parseHostAddress(s); msg != "" {
				l.errorf(sp, "%s.address: %s", hp, msg)
			} else {
				h.Address, ha.hasAddr = addr, true
			}
		}
		switch {
		case hasLB:
			if s, sp, ok := m.nonEmpty("lb_server", true, "the HAProxy <backend>/<server>, required because load_balancer is set"); ok {
				ha.lbP = sp
				if isLBServer(s) {
					h.LBServer, ha.hasLB = s, true
				} else {
					l.errorf(sp, "%s.lb_server: must be <backend>/<server> as named in HAProxy, like web/web1, got %s", hp, quote(s))
				}
			}
		case m.has("lb_server"):
			l.errorf(m.keyPos("lb_server"), "%s.lb_server: set, but no load_balancer is configured: the host would never be drained; add load_balancer.haproxy or remove lb_server", hp)
		}
		if t, ok := m.enum("transport", string(TransportSSH), string(TransportSSH), string(TransportAgent)); ok {
			h.Transport = Transport(t)
		}
		p.Hosts = append(p.Hosts, h)
		at = append(at, ha)
	}

	// Names, addresses and balancer servers are unique across the fleet.
	names := map[string]hostAt{}
	addrs := map[string]hostAt{}
	servers := map[string]hostAt{}
	for i, ha := range at {
		h := p.Hosts[i]
		if ha.hasName {
			if first, dup := names[h.Name]; dup {
				l.errorf(ha.nameP, "%s.name: duplicate host name %s (also %s, line %d)", ha.path, quote(h.Name), first.path, first.nameP.line)
			} else {
				names[h.Name] = ha
			}
		}
		if ha.hasAddr {
			key := strings.ToLower(h.Address)
			if first, dup := addrs[key]; dup {
				l.errorf(ha.addrP, "%s.address: duplicate address %s (also %s, line %d)", ha.path, h.Address, first.path, first.addrP.line)
			} else {
				addrs[key] = ha
			}
		}
		if ha.hasLB {
			if first, dup := servers[h.LBServer]; dup {
				l.errorf(ha.lbP, "%s.lb_server: duplicate lb_server %s (also %s, line %d)", ha.path, h.LBServer, first.path, first.lbP.line)
			} else {
				servers[h.LBServer] = ha
			}
		}
	}
	clean := len(at) == len(v.n.(*ast.SequenceNode).Values)
	for _, ha := range at {
		clean = clean && ha.hasName && ha.hasAddr
	}
	return clean
}

// parseHostAddress accepts host, host:port, [v6]:port or a bare IPv6
// address, and returns host:port with the port defaulted to 22. A non-empty
// second result says what is wrong.
func parseHostAddress(s string) (string, string) {
	bad := fmt.Sprintf("must be host or host:port, got %s", quote(s))
	switch {
	case strings.Contains(s, "://"):
		return "", fmt.Sprintf("must be host or host:port without a scheme, got %s", quote(s))
	case strings.Contains(s, "@"):
		return "", fmt.Sprintf("must be host or host:port; put the user in ssh.user, got %s", quote(s))
	case strings.ContainsAny(s, " \t\r\n/"):
		return "", bad
	}
	host, port := s, DefaultSSHPort
	switch {
	case strings.HasPrefix(s, "["):
		if strings.HasSuffix(s, "]") {
			host = s[1 : len(s)-1]
		} else {
			h, pt, err := net.SplitHostPort(s)
			if err != nil {
				return "", bad
			}
			host, port = h, pt
		}
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return "", bad
		}
	case strings.Count(s, ":") > 1:
		if ip := net.ParseIP(s); ip == nil {
			return "", bad
		}
	case strings.Count(s, ":") == 1:
		h, pt, err := net.SplitHostPort(s)
		if err != nil {
			return "", bad
		}
		host, port = h, pt
		if !validHost(host) {
			return "", bad
		}
	default:
		if !validHost(host) {
			return "", bad
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strings.HasPrefix(port, "+") {
		return "", fmt.Sprintf("port must be a number between 1 and 65535, got %s", quote(s))
	}
	return net.JoinHostPort(host, port), ""
}

// validHost accepts an IP address or a DNS name.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for _, label := range strings.Split(h, ".") {
		if !hostnameRE.MatchString(label) {
			return false
		}
	}
	return true
}

func isLBServer(s string) bool {
	b, srv, ok := strings.Cut(s, "/")
	return ok && lbNameRE.MatchString(b) && lbNameRE.MatchString(srv)
}

// ---- load balancer ----

func (l *loader) loadBalancer(top *mapping, p *Plan) bool {
	p.LoadBalancer = LoadBalancer{
		DrainTimeout:   DefaultDrainTimeout,
		OnDrainTimeout: DrainTimeoutFail,
		EnableTimeout:  DefaultEnableTimeout,
	}
	lb, ok := top.optMapping("load_balancer", lbKeys...)
	if !ok {
		return true // set, though wrongly: the hosts still need lb_server
	}
	if lb == nil {
		return false
	}
	p.LoadBalancer.DrainTimeout, _, _ = lb.duration("drain_timeout", DefaultDrainTimeout, positive)
	p.LoadBalancer.EnableTimeout, _, _ = lb.duration("enable_timeout", DefaultEnableTimeout, positive)
	if s, ok := lb.enum("on_drain_timeout", string(DrainTimeoutFail), string(DrainTimeoutFail), string(DrainTimeoutForce)); ok {
		p.LoadBalancer.OnDrainTimeout = DrainTimeoutAction(s)
	}
	hv, present, ok := lb.get("haproxy")
	if !present {
		lb.missing("haproxy", "the runtime API: socket or address")
		return true
	}
	if !ok {
		return true
	}
	// One instance is a mapping; several (an HAProxy pair) are a list of them.
	var items []value
	var paths []string
	switch hv.k {
	case kMap:
		items, paths = []value{hv}, []string{"load_balancer.haproxy"}
	case kSeq:
		for i, e := range hv.n.(*ast.SequenceNode).Values {
			path := index("load_balancer.haproxy", i)
			if ev, ok := lb.d.value(e, path); ok {
				items, paths = append(items, ev), append(paths, path)
			}
		}
		if len(hv.n.(*ast.SequenceNode).Values) == 0 {
			l.errorf(hv.p, "load_balancer.haproxy: an empty list; give the runtime API of each HAProxy instance, like [{socket: /run/haproxy/admin.sock}]")
			return true
		}
	default:
		l.errorf(hv.p, "load_balancer.haproxy: must be the runtime API (a mapping with socket or address) or a list of them, one per HAProxy instance, got %s", hv)
		return true
	}
	seen := map[string]bool{}
	for i, item := range items {
		if hp, ok := l.haproxy(lb.d, item, paths[i]); ok {
			if key := hp.Socket + hp.Address; seen[key] {
				l.errorf(item.p, "%s: the same runtime API as an earlier instance (%s)", paths[i], key)
			} else {
				seen[key] = true
				p.LoadBalancer.HAProxy = append(p.LoadBalancer.HAProxy, hp)
			}
		}
	}
	return true
}

// haproxy reads one instance's runtime API at path.
func (l *loader) haproxy(d *doc, v value, path string) (HAProxy, bool) {
	var hp HAProxy
	if v.k != kMap {
		l.errorf(v.p, "%s: must be a mapping with socket (a unix socket path) or address (host:port), got %s", path, v)
		return hp, false
	}
	hm, ok := d.mapping(v, path, haproxyKeys...)
	if !ok {
		return hp, false
	}
	switch {
	case hm.has("socket") && hm.has("address"):
		later := "address"
		if hm.keyPos("socket").line > hm.keyPos("address").line {
			later = "socket"
		}
		l.errorf(hm.keyPos(later), "%s: set socket or address, not both", path)
	case hm.has("socket"):
		if s, sp, ok := hm.nonEmpty("socket", false, ""); ok {
			if abs, msg := l.localPath(s); msg != "" {
				l.errorf(sp, "%s.socket: %s", path, msg)
			} else if msg := l.coordinatorFile(abs); msg != "" {
				l.errorf(sp, "%s.socket: %s", path, msg)
			} else {
				hp.Socket = abs
				return hp, true
			}
		}
	case hm.has("address"):
		if s, sp, ok := hm.nonEmpty("address", false, ""); ok {
			h, port, err := net.SplitHostPort(s)
			n, perr := strconv.Atoi(port)
			if err != nil || h == "" || perr != nil || n < 1 || n > 65535 {
				l.errorf(sp, "%s.address: must be host:port of the runtime API, like 127.0.0.1:9999, got %s", path, quote(s))
			} else {
				hp.Address = s
				return hp, true
			}
		}
	default:
		l.errorf(hm.p, "%s: needs socket (a unix socket path) or address (host:port) of the runtime API", path)
	}
	return hp, false
}

// ---- ssh ----

func (l *loader) ssh(top *mapping, p *Plan) {
	p.SSH = SSH{
		HostKeyChecking: HostKeyStrict,
		ConnectTimeout:  DefaultConnectTimeout,
		CommandTimeout:  DefaultCommandTimeout,
	}
	usesSSH := false
	for _, h := range p.Hosts {
		usesSSH = usesSSH || h.Transport == TransportSSH
	}
	sm, ok := top.optMapping("ssh", sshKeys...)
	if !ok {
		return
	}
	if sm == nil {
		// An empty mapping: only defaults.
		sm = &mapping{d: top.d, path: "ssh", p: top.keyPos("ssh"), fields: map[string]field{}}
	}
	if s, sp, ok := sm.nonEmpty("user", false, ""); ok {
		if strings.HasPrefix(s, "-") || strings.ContainsAny(s, " \t\r\n@:/") {
			l.errorf(sp, "ssh.user: must be a user name, got %s", quote(s))
		} else {
			p.SSH.User = s
		}
	} else if !sm.has("user") {
		p.SSH.User = currentUser()
		if p.SSH.User == "" && usesSSH {
			l.errorf(sm.p, "ssh: missing required key \"user\" (the current user is unknown)")
		}
	}
	if s, sp, ok := sm.nonEmpty("identity_file", false, ""); ok {
		if abs, msg := l.localPath(s); msg != "" {
			l.errorf(sp, "ssh.identity_file: %s", msg)
		} else if msg := l.coordinatorFile(abs); msg != "" {
			l.errorf(sp, "ssh.identity_file: %s", msg)
		} else if msg := regularFile(abs); msg != "" && !l.opts.SkipCoordinatorFiles {
			l.errorf(sp, "ssh.identity_file: %s", msg)
		} else {
			p.SSH.IdentityFile = abs
		}
	}
	if s, sp, ok := sm.nonEmpty("known_hosts", false, ""); ok {
		if abs, msg := l.localPath(s); msg != "" {
			l.errorf(sp, "ssh.known_hosts: %s", msg)
		} else if msg := l.coordinatorFile(abs); msg != "" {
			l.errorf(sp, "ssh.known_hosts: %s", msg)
		} else {
			p.SSH.KnownHosts = abs
		}
	} else if !sm.has("known_hosts") {
		if home, err := os.UserHomeDir(); err == nil && home != "" {
			p.SSH.KnownHosts = filepath.Join(home, ".ssh", "known_hosts")
		} else if usesSSH {
			l.errorf(sm.p, "ssh: missing required key \"known_hosts\" (the home directory is unknown)")
		}
	}
	if s, ok := sm.enum("host_key_checking", string(HostKeyStrict), string(HostKeyStrict), string(HostKeyAcceptNew)); ok {
		p.SSH.HostKeyChecking = HostKeyChecking(s)
	}
	p.SSH.ConnectTimeout, _, _ = sm.duration("connect_timeout", DefaultConnectTimeout, positive)
	p.SSH.CommandTimeout, _, _ = sm.duration("command_timeout", DefaultCommandTimeout, positive)
	p.SSH.SessionPerCommand, _ = sm.boolean("session_per_command", false)
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// localPath expands a leading ~ and resolves a relative path against the
// plan's folder. A non-empty second result says what is wrong.
func (l *loader) localPath(s string) (string, string) {
	if strings.ContainsAny(s, "\x00\n\r") {
		return "", fmt.Sprintf("must be a file path, got %s", quote(s))
	}
	if strings.HasPrefix(s, "~") {
		rest := s[1:]
		if rest != "" && !strings.HasPrefix(rest, "/") {
			return "", fmt.Sprintf("only ~ and ~/ are expanded (not ~user), got %s", quote(s))
		}
		home, err := os.UserHomeDir()
		if err != nil || home == "" {
			return "", fmt.Sprintf("cannot expand ~: the home directory is unknown, got %s", quote(s))
		}
		return filepath.Join(home, rest), ""
	}
	if filepath.IsAbs(s) {
		return filepath.Clean(s), ""
	}
	return filepath.Join(l.dir, s), ""
}

// regularFile says what is wrong with a path that must be a readable file.
func regularFile(p string) string {
	fi, err := os.Stat(p)
	if err != nil {
		return fileProblem(p, err)
	}
	if fi.IsDir() {
		return fmt.Sprintf("%s is a directory, expected a file", p)
	}
	return ""
}

func fileProblem(p string, err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Sprintf("file %s does not exist", p)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Sprintf("cannot read %s: %v", p, err)
}

// ---- strategy ----

func (l *loader) strategy(top *mapping, p *Plan) (at []sizeAt, minAt sizeAt) {
	p.Strategy = Strategy{Batches: []Size{{N: 1}}, MinInService: Size{N: 1}, Concurrency: DefaultConcurrency}
	// Where each ramp entry and min_in_service were written, for the
	// outage check (no strategy block: both are defaults, at the top).
	at = []sizeAt{{top.p, "strategy.batch (default 1)"}}
	minAt = sizeAt{top.p, "strategy.min_in_service (default 1)"}
	sm, ok := top.optMapping("strategy", strategyKeys...)
	if !ok || sm == nil {
		return at, minAt
	}
	switch {
	case sm.has("batch") && sm.has("batches"):
		later := "batches"
		if sm.keyPos("batch").line > sm.keyPos("batches").line {
			later = "batch"
		}
		l.errorf(sm.keyPos(later), "strategy: set batch or batches, not both")
	case sm.has("batch"):
		if v, _, ok := sm.get("batch"); ok {
			if s, ok := l.size(sm.d, v, "strategy.batch", true); ok {
				p.Strategy.Batches = []Size{s}
				at = []sizeAt{{v.p, "strategy.batch"}}
			}
		}
	case sm.has("batches"):
		if v, _, ok := sm.get("batches"); ok {
			if v.k != kSeq || len(v.n.(*ast.SequenceNode).Values) == 0 {
				l.errorf(v.p, "strategy.batches: must be a non-empty list of batch sizes like [1, 5, \"20%%\"], got %s", v)
			} else {
				var ramp []Size
				var rampAt []sizeAt
				good := true
				for i, e := range v.n.(*ast.SequenceNode).Values {
					path := index("strategy.batches", i)
					ev, ok := sm.d.value(e, path)
					if !ok {
						good = false
						continue
					}
					s, ok := l.size(sm.d, ev, path, true)
					good = good && ok
					ramp = append(ramp, s)
					rampAt = append(rampAt, sizeAt{ev.p, path})
				}
				if good {
					p.Strategy.Batches, at = ramp, rampAt
				}
			}
		}
	}
	if v, _, ok := sm.get("max_failures"); ok {
		if s, ok := l.size(sm.d, v, "strategy.max_failures", false); ok {
			if n := len(p.Hosts); n > 0 && !s.Percent && s.N > n {
				l.errorf(v.p, "strategy.max_failures: must not exceed the number of hosts (%d), got %d", n, s.N)
			} else {
				p.Strategy.MaxFailures = s
			}
		}
	}
	p.Strategy.Pause, _, _ = sm.duration("pause", 0, nonNegative)
	if v, _, ok := sm.get("min_in_service"); ok {
		if s, ok := l.size(sm.d, v, "strategy.min_in_service", true); ok {
			p.Strategy.MinInService, minAt = s, sizeAt{v.p, "strategy.min_in_service"}
		}
	}
	p.Strategy.AllowFullOutage, _ = sm.boolean("allow_full_outage", false)
	p.Strategy.Concurrency, _, _ = sm.integer("concurrency", DefaultConcurrency, 1, 1024)
	return at, minAt
}

// sizeAt is where a batch size (or min_in_service) was written.
type sizeAt struct {
	p    pos
	path string
}

// checkOutage refuses a batch that would leave fewer than min_in_service
// servers of a backend in rotation (with the default of 1: a batch that
// drains a whole backend), unless allow_full_outage is set. It counts the
// servers the plan names; the engine counts the balancer's own view, and
// servers already down, as it goes.
func (l *loader) checkOutage(p *Plan, at []sizeAt, minAt sizeAt) {
	if !p.hasBalancer() || p.Strategy.AllowFullOutage || len(p.Hosts) == 0 {
		return
	}
	total := p.BackendSizes()
	reported := map[string]bool{}
	for i, batch := range p.Batches() {
		where := at[min(i, len(at)-1)]
		inBatch := map[string]int{}
		for _, h := range batch {
			if b := h.Backend(); b != "" {
				inBatch[b]++
			}
		}
		for _, b := range slices.Sorted(maps.Keys(inBatch)) {
			n, k := total[b], inBatch[b]
			need := p.MinInService(b)
			if n-k >= need || reported[b] {
				continue
			}
			reported[b] = true
			switch {
			case n-k == 0 && n <= need:
				l.errorf(where.p, "%s: backend %s has %s in this plan, so any batch takes it all out of rotation (an outage); add servers, or set strategy.allow_full_outage: true to accept an outage",
					where.path, b, plural(n, "server"))
			case n-k == 0:
				l.errorf(where.p, "%s: batch %d takes all %s of backend %s out of rotation at once (an outage); use at most %d, or set strategy.allow_full_outage: true to accept an outage",
					where.path, i+1, plural(n, "server"), b, n-need)
			case n <= need:
				l.errorf(minAt.p, "%s: %d of backend %s's %s must stay in rotation, which leaves none to deploy to; lower it, or set strategy.allow_full_outage: true to accept an outage",
					minAt.path, need, b, plural(n, "server"))
			default:
				l.errorf(where.p, "%s: batch %d takes %d of backend %s's %s out of rotation, leaving %d, fewer than strategy.min_in_service=%d; use at most %d per batch, or set strategy.allow_full_outage: true",
					where.path, i+1, k, b, plural(n, "server"), n-k, need, n-need)
			}
		}
	}
}

// size decodes a count or a percentage. A batch size must be positive; a
// failure budget may be 0.
func (l *loader) size(d *doc, v value, path string, batch bool) (Size, bool) {
	expect := `a positive count or a percentage like "25%"`
	if !batch {
		expect = `a count (0 or more) or a percentage like "10%"`
	}
	var text string
	switch v.k {
	case kInt:
		text = v.text
		n, _ := intValue(v)
		if n < 0 || n == 0 && batch || n > maxInt {
			l.errorf(v.p, "%s: must be %s, got %s", path, expect, v)
			return Size{}, false
		}
		return Size{N: int(n)}, true
	case kString:
		text = v.text
	default:
		l.errorf(v.p, "%s: must be %s, got %s", path, expect, v)
		return Size{}, false
	}
	if m := percentRE.FindStringSubmatch(text); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 || n > 100 {
			l.errorf(v.p, "%s: a percentage must be between 1%% and 100%%, got %s", path, v)
			return Size{}, false
		}
		return Size{N: n, Percent: true}, true
	}
	if countRE.MatchString(text) {
		n, err := strconv.Atoi(strings.TrimSpace(text))
		if err == nil && n <= maxInt && (n > 0 || !batch) {
			return Size{N: n}, true
		}
	}
	l.errorf(v.p, "%s: must be %s, got %s", path, expect, v)
	return Size{}, false
}

// ---- release ----

func (l *loader) release(top *mapping, p *Plan) {
	p.Release = Release{Keep: DefaultKeep}
	v, present, ok := top.get("release")
	if !present {
		top.missing("release", "artifact, path and restart")
		return
	}
	if !ok {
		return
	}
	rm, ok := top.d.mapping(v, "release", releaseKeys...)
	if !ok {
		return
	}
	if s, sp, ok := rm.nonEmpty("artifact", true, "the release tarball, relative to the plan file"); ok {
		abs, msg := l.localPath(s)
		if sp.fromSet() && msg == "" && !filepath.IsAbs(s) && !strings.HasPrefix(s, "~") {
			// Typed on the command line: relative to where drover runs.
			abs, _ = filepath.Abs(s)
		}
		if msg != "" {
			l.errorf(sp, "release.artifact: %s", msg)
		} else if l.opts.Artifact != nil {
			if f, err := l.opts.Artifact(abs); err != nil {
				l.errorf(sp, "release.artifact: %v", err)
			} else {
				p.Release.Artifact = f
			}
		} else if fi, err := os.Stat(abs); err != nil {
			l.errorf(sp, "release.artifact: %s", fileProblem(abs, err))
		} else if fi.IsDir() {
			l.errorf(sp, "release.artifact: %s is a directory, expected a .tar.gz file", abs)
		} else if fi.Size() == 0 {
			l.errorf(sp, "release.artifact: %s is empty", abs)
		} else {
			p.Release.Artifact = abs
		}
	}
	if s, sp, ok := rm.nonEmpty("path", true, "where releases live on each host, like /srv/app"); ok {
		switch {
		case strings.ContainsAny(s, "\x00\n\r\t"):
			l.errorf(sp, "release.path: must not contain control characters, got %s", quote(s))
		case !path.IsAbs(s):
			l.errorf(sp, "release.path: must be an absolute path like /srv/app, got %s", quote(s))
		case hasDotDot(s):
			l.errorf(sp, "release.path: must not contain .. elements, got %s", quote(s))
		case path.Clean(s) == "/":
			l.errorf(sp, "release.path: must not be the root directory")
		default:
			p.Release.Path = path.Clean(s)
		}
	}
	if s, _, ok := rm.nonEmpty("restart", true, "the command that restarts the app after `current` moves"); ok {
		p.Release.Restart = s
	}
	p.Release.Keep, _, _ = rm.integer("keep", DefaultKeep, 1, maxInt)
	p.Release.StripComponents, _, _ = rm.integer("strip_components", 0, 0, 64)
}

func hasDotDot(s string) bool {
	for _, e := range strings.Split(s, "/") {
		if e == ".." {
			return true
		}
	}
	return false
}

// ---- health ----

func (l *loader) health(top *mapping, p *Plan, hostsOK bool) {
	p.Health = Health{
		Interval:         DefaultInterval,
		Timeout:          DefaultTimeout,
		HealthyThreshold: DefaultHealthyThreshold,
		Deadline:         DefaultDeadline,
	}
	v, present, ok := top.get("health")
	if !present {
		top.missing("health", "one check: http, tcp or command")
		return
	}
	if !ok {
		return
	}
	hm, ok := top.d.mapping(v, "health", healthKeys...)
	if !ok {
		return
	}
	var checks []string
	for _, c := range []string{"http", "tcp", "command"} {
		if hm.has(c) {
			checks = append(checks, c)
		}
	}
	// The first one written wins; the others are the mistake.
	sort.SliceStable(checks, func(i, j int) bool {
		a, b := hm.keyPos(checks[i]), hm.keyPos(checks[j])
		return a.line < b.line || a.line == b.line && a.col < b.col
	})
	if len(checks) == 0 {
		l.errorf(hm.p, "health: needs exactly one check: http, tcp or command")
	}
	for _, c := range checks[min(1, len(checks)):] {
		l.errorf(hm.keyPos(c), "health.%s: only one check may be set; %s is already set", c, checks[0])
	}
	if len(checks) > 0 {
		switch checks[0] {
		case "http":
			l.httpCheck(hm, p, hostsOK)
		case "tcp":
			if tm, ok := hm.optMapping("tcp", tcpKeys...); ok {
				if tm == nil {
					l.errorf(hm.keyPos("tcp"), "health.tcp: must be a mapping like {port: 8080}, got null")
				} else if !tm.has("port") {
					tm.missing("port", "the port to connect to on each host")
				} else if port, _, ok := tm.integer("port", 0, 1, 65535); ok {
					p.Health.TCP = &TCPCheck{Port: port}
				}
			}
		case "command":
			if s, _, ok := hm.nonEmpty("command", false, ""); ok {
				p.Health.Command = s
			}
		}
	}

	h := &p.Health
	var intervalP, timeoutP, deadlineP, thresholdP pos
	var okI, okT, okD, okH bool
	h.Interval, intervalP, okI = hm.duration("interval", DefaultInterval, positive)
	h.Timeout, timeoutP, okT = hm.duration("timeout", DefaultTimeout, positive)
	h.Deadline, deadlineP, okD = hm.duration("deadline", DefaultDeadline, positive)
	h.HealthyThreshold, thresholdP, okH = hm.integer("healthy_threshold", DefaultHealthyThreshold, 1, maxInt)
	h.MinHealthyTime, _, _ = hm.duration("min_healthy_time", 0, nonNegative)
	if !okI || !okT || !okD || !okH {
		return
	}
	// Point at whichever of the two settings the operator wrote.
	pick := func(primary string, pp pos, other pos) pos {
		if hm.has(primary) {
			return pp
		}
		return other
	}
	reported := true
	switch {
	case h.Deadline < h.Interval:
		if hm.has("deadline") {
			l.errorf(deadlineP, "health.deadline: must be at least health.interval (%s), got %s", fmtDuration(h.Interval), fmtDuration(h.Deadline))
		} else {
			l.errorf(intervalP, "health.interval: must not exceed health.deadline (%s), got %s", fmtDuration(h.Deadline), fmtDuration(h.Interval))
		}
	case time.Duration(h.HealthyThreshold-1) > h.Deadline/h.Interval:
		need := h.Interval * time.Duration(h.HealthyThreshold-1)
		l.errorf(pick("deadline", deadlineP, pick("healthy_threshold", thresholdP, intervalP)),
			"health.deadline: %s cannot fit %d consecutive passes every %s (needs at least %s)",
			fmtDuration(h.Deadline), h.HealthyThreshold, fmtDuration(h.Interval), fmtDuration(need))
	default:
		reported = false
	}
	if !reported && h.Timeout > h.Deadline {
		if hm.has("timeout") {
			l.errorf(timeoutP, "health.timeout: must not exceed health.deadline (%s), got %s", fmtDuration(h.Deadline), fmtDuration(h.Timeout))
		} else {
			l.errorf(deadlineP, "health.deadline: must be at least health.timeout (%s), got %s", fmtDuration(h.Timeout), fmtDuration(h.Deadline))
		}
	}
}

func (l *loader) httpCheck(hm *mapping, p *Plan, hostsOK bool) {
	v, _, ok := hm.get("http")
	if !ok {
		return
	}
	if v.k == kNull {
		l.errorf(hm.keyPos("http"), "health.http: must be a mapping like {url: \"http://{{.Host}}:8080/health\"}, got null")
		return
	}
	m, ok := hm.d.mapping(v, "health.http", httpKeys...)
	if !ok {
		return
	}
	c := &HTTPCheck{Status: DefaultHTTPStatus}
	good := true
	if s, sp, ok := m.nonEmpty("url", true, `like "http://{{.Host}}:8080/health"`); ok {
		c.URL = s
		if msg := checkURLTemplate(s); msg != "" {
			l.errorf(sp, "health.http.url: %s", msg)
			good = false
		} else if hostsOK {
			// Render for every host: a URL must be valid for each one, and
			// a URL that is the same for every host checks none of them.
			seen := map[string]bool{}
			for _, h := range p.Hosts {
				u, err := renderURL(s, h, p.Version)
				if err != nil {
					l.errorf(sp, "health.http.url: %v", err)
					good = false
					break
				}
				seen[u] = true
			}
			if good && len(p.Hosts) > 1 && len(seen) == 1 {
				for u := range seen {
					l.errorf(sp, "health.http.url: renders to the same URL for every host (%s); use {{.Host}} or {{.Name}} so that each host is checked itself", u)
				}
				good = false
			}
		}
	} else {
		good = false
	}
	if st, _, ok := m.integer("status", DefaultHTTPStatus, 100, 599); ok {
		c.Status = st
	}
	if m.has("body_contains") {
		if s, _, ok := m.str("body_contains", false, ""); ok {
			c.BodyContains = s
		}
	}
	if good {
		p.Health.HTTP = c
	}
}
