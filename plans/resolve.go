package plans

// Resolution is the second step of reading a plan, after decoding its text
// (Decode): the inventory is read and its hosts decoded, the checks that
// need the hosts run, and the files the plan names are looked at. Every
// problem is still reported at the key that names the file.

import (
	"os"
	"path/filepath"
	"strings"
)

// Files says how Resolve looks at the files a plan names, for plans read on
// one machine and run on another (a coordinator cluster). The zero value
// checks every file on this machine and allows any.
type Files struct {
	// Artifact is how release.artifact is checked.
	Artifact ArtifactCheck
	// SkipCoordinatorFiles leaves unchecked the files that the coordinators
	// read (ssh.identity_file): a CLI talking to a cluster cannot see them.
	SkipCoordinatorFiles bool
	// Allowed, when set, is the only set of coordinator files the plan may
	// name (inventory, ssh.identity_file, ssh.known_hosts,
	// load_balancer.haproxy.socket): a cluster sets it from its operator's
	// --plan-files (see AllowedFiles). nil (the local CLI) allows any file.
	Allowed *AllowedFiles
}

// ArtifactCheck is how Resolve checks release.artifact.
type ArtifactCheck int

const (
	// ArtifactHere: the archive is a non-empty file on this machine.
	ArtifactHere ArtifactCheck = iota
	// ArtifactUnchecked keeps release.artifact as written (resolved against
	// the plan's folder) without looking at it: a repair installs nothing,
	// and a coordinator finds the archive by its digest itself (reporting a
	// problem with Draft.Reject).
	ArtifactUnchecked
)

// inventoryRef is the inventory a plan names, for resolve to read.
type inventoryRef struct {
	file string // as written
	at   pos
	path string // absolute
}

// fleetChecks is what decoding leaves for resolve, which knows the hosts.
type fleetChecks struct {
	inventory     *inventoryRef
	hasLB         bool
	hostsOK       bool // every host decoded cleanly
	defaultUser   bool // ssh.user not set: the current user
	noHome        bool // ssh.known_hosts not set, and no home to default it to
	sshAt         pos  // where the ssh section is, for those two
	maxFailuresAt pos  // zero when strategy.max_failures is not set
	batchAt       []sizeAt
	minAt         sizeAt
}

// resolve completes a decoded plan: the inventory's hosts, the checks
// that need hosts, the files, then the checks across keys.
func (l *loader) resolve(p *Plan) {
	c := &l.later
	if c.inventory != nil {
		c.hostsOK = l.readInventory(p, c.inventory)
	}
	l.fleetChecks(p)
	l.resolveFiles()
	p.Keys = make(map[string]Position, len(l.keys))
	for k, at := range l.keys {
		p.Keys[k] = Position(at)
	}
	l.checkCanary(p) // before the outage check: a canary of every host is the mistake to name
	// A check across keys, on a plan that decoded cleanly only: on a
	// half-decoded one it would be noise.
	if len(l.errs) == 0 {
		l.checkOutage(p, c.batchAt, c.minAt)
		l.checkBaseline(p)
	}
}

// readInventory reads the inventory and decodes its hosts; it reports
// whether every host decoded cleanly.
func (l *loader) readInventory(p *Plan, inv *inventoryRef) bool {
	if msg := l.allowed(inv.path); msg != "" {
		l.errorf(inv.at, "inventory: %s", msg)
		return false
	}
	// Problems inside the inventory are reported against the file as the
	// operator would name it: relative to where the plan was named.
	shown := inv.file
	if strings.HasPrefix(inv.file, "~") {
		shown = inv.path
	} else if !filepath.IsAbs(inv.file) {
		shown = filepath.Join(filepath.Dir(l.path), inv.file)
	}
	data, err := os.ReadFile(inv.path)
	if err != nil {
		l.errorf(inv.at, "inventory: %s", describeFileError(inv.path, err))
		return false
	}
	p.Inventory = inv.path
	body, d, ok := parseYAML(&l.sink, shown, data, "inventory", nil)
	if !ok {
		return false
	}
	if body == nil {
		l.errorf(pos{File: shown, Line: 1, Col: 1}, "hosts: must list at least one host, got an empty file")
		return false
	}
	v, ok := d.Value(body, "hosts")
	if !ok {
		return false
	}
	return l.hostList(d, v, p, l.later.hasLB)
}

// fleetChecks runs the checks of single keys that depend on the hosts.
func (l *loader) fleetChecks(p *Plan) {
	c := &l.later
	usesSSH := false
	for _, h := range p.Hosts {
		usesSSH = usesSSH || h.Transport == TransportSSH
	}
	if c.defaultUser {
		p.SSH.User = currentUser()
		if p.SSH.User == "" && usesSSH {
			l.errorf(c.sshAt, "ssh: missing required key \"user\" (the current user is unknown)")
		}
	}
	if c.noHome && usesSSH {
		l.errorf(c.sshAt, "ssh: missing required key \"known_hosts\" (the home directory is unknown)")
	}
	if s := p.Strategy.MaxFailures; c.maxFailuresAt != (pos{}) {
		if n := len(p.Hosts); n > 0 && !s.Percent && s.N > n {
			l.errorf(c.maxFailuresAt, "strategy.max_failures: must not exceed the number of hosts (%d), got %d", n, s.N)
		}
	}
	if hc := p.Health.HTTP; hc != nil && c.hostsOK {
		l.renderURLs(p, hc.URL, l.keys["health.http.url"])
	}
}

// renderURLs renders the health URL, written at sp, for every host: a URL
// must be valid for each one, and a URL that is the same for every host
// checks none of them.
func (l *loader) renderURLs(p *Plan, s string, sp pos) {
	seen := map[string]bool{}
	for _, h := range p.Hosts {
		u, err := renderURL(s, h, p.Version)
		if err != nil {
			l.errorf(sp, "health.http.url: %v", err)
			return
		}
		seen[u] = true
	}
	if len(p.Hosts) > 1 && len(seen) == 1 {
		for u := range seen {
			l.errorf(sp, "health.http.url: renders to the same URL for every host (%s); use {{.Host}} or {{.Name}} so that each host is checked itself", u)
		}
	}
}

// allowed says whether a plan may name the coordinator file p (see
// Files.Allowed); it returns a message for the key, or "".
func (l *loader) allowed(p string) string {
	if l.files.Allowed == nil {
		return ""
	}
	if err := l.files.Allowed.check(p); err != nil {
		return p + " " + err.Error()
	}
	return ""
}

// fileRef is a file a plan names, decoded to an absolute path but not yet
// looked at: decoding reads no file, and resolveFiles checks them all.
type fileRef struct {
	key  string // as in messages: "ssh.identity_file"
	at   pos
	kind fileKind
	path string // absolute
}

// fileKind is what a plan's file must be.
type fileKind int

const (
	artifactFile    fileKind = iota // the release archive: a non-empty file (see Files.Artifact)
	coordinatorFile                 // read by the coordinators (identity): allowed, and a file
	coordinatorPath                 // used by the coordinators (known_hosts, HAProxy socket): allowed
)

// resolveFiles checks every file the plan names: the release archive on
// this machine, and the coordinators' files against Files.Allowed.
func (l *loader) resolveFiles() {
	for _, r := range l.refs {
		if msg := l.fileProblem(r); msg != "" {
			l.errorf(r.at, "%s: %s", r.key, msg)
		}
	}
}

// fileProblem checks one file; it returns a message, or "".
func (l *loader) fileProblem(r fileRef) string {
	abs := r.path
	switch r.kind {
	case artifactFile:
		if l.files.Artifact == ArtifactUnchecked {
			return ""
		}
		fi, err := os.Stat(abs)
		switch {
		case err != nil:
			return describeFileError(abs, err)
		case fi.IsDir():
			return abs + " is a directory, expected a .tar.gz file"
		case fi.Size() == 0:
			return abs + " is empty"
		}
		return ""
	case coordinatorFile:
		if msg := l.allowed(abs); msg != "" || l.files.SkipCoordinatorFiles {
			return msg
		}
		return regularFile(abs)
	}
	return l.allowed(abs)
}
