package plans

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/plans/yamlpos"
	"github.com/goccy/go-yaml/ast"
)

// ---- load balancer ----

func (l *loader) loadBalancer(top *mapping, p *Plan) bool {
	p.LoadBalancer = LoadBalancer{
		DrainTimeout:   DefaultDrainTimeout,
		OnDrainTimeout: DrainTimeoutFail,
		EnableTimeout:  DefaultEnableTimeout,
	}
	lb, ok := top.OptMapping("load_balancer", lbKeys...)
	if !ok {
		return true // set, though wrongly: the hosts still need lb_server
	}
	if lb == nil {
		return false
	}
	p.LoadBalancer.DrainTimeout, _, _ = lb.Duration("drain_timeout", DefaultDrainTimeout, positive)
	p.LoadBalancer.EnableTimeout, _, _ = lb.Duration("enable_timeout", DefaultEnableTimeout, positive)
	if s, ok := lb.Enum("on_drain_timeout", string(DrainTimeoutFail), string(DrainTimeoutFail), string(DrainTimeoutForce)); ok {
		p.LoadBalancer.OnDrainTimeout = DrainTimeoutAction(s)
	}
	hv, present, ok := lb.Get("haproxy")
	if !present {
		lb.Missing("haproxy", "the runtime API: socket or address")
		return true
	}
	if !ok {
		return true
	}
	// One instance is a mapping; several (an HAProxy pair) are a list of them.
	var items []value
	var paths []string
	switch hv.K {
	case kMap:
		items, paths = []value{hv}, []string{"load_balancer.haproxy"}
	case kSeq:
		for i, e := range hv.N.(*ast.SequenceNode).Values {
			path := index("load_balancer.haproxy", i)
			if ev, ok := lb.D.Value(e, path); ok {
				items, paths = append(items, ev), append(paths, path)
			}
		}
		if len(hv.N.(*ast.SequenceNode).Values) == 0 {
			l.errorf(hv.P, "load_balancer.haproxy: an empty list; give the runtime API of each HAProxy instance, like [{socket: /run/haproxy/admin.sock}]")
			return true
		}
	default:
		l.errorf(hv.P, "load_balancer.haproxy: must be the runtime API (a mapping with socket or address) or a list of them, one per HAProxy instance, got %s", hv)
		return true
	}
	seen := map[string]bool{}
	for i, item := range items {
		if hp, ok := l.haproxy(lb.D, item, paths[i]); ok {
			if key := hp.Socket + hp.Address; seen[key] {
				l.errorf(item.P, "%s: the same runtime API as an earlier instance (%s)", paths[i], key)
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
	if v.K != kMap {
		l.errorf(v.P, "%s: must be a mapping with socket (a unix socket path) or address (host:port), got %s", path, v)
		return hp, false
	}
	hm, ok := d.Mapping(v, path, haproxyKeys...)
	if !ok {
		return hp, false
	}
	switch {
	case hm.Has("socket") && hm.Has("address"):
		later := "address"
		if hm.KeyPos("socket").Line > hm.KeyPos("address").Line {
			later = "socket"
		}
		l.errorf(hm.KeyPos(later), "%s: set socket or address, not both", path)
	case hm.Has("socket"):
		if s, sp, ok := hm.NonEmpty("socket", false, ""); ok {
			if abs, msg := l.localPath(s); msg != "" {
				l.errorf(sp, "%s.socket: %s", path, msg)
			} else {
				hp.Socket = abs
				l.at(path+".socket", sp)
				l.refs = append(l.refs, fileRef{key: path + ".socket", at: sp, kind: coordinatorPath, path: hp.Socket})
				return hp, true
			}
		}
	case hm.Has("address"):
		if s, sp, ok := hm.NonEmpty("address", false, ""); ok {
			h, port, err := net.SplitHostPort(s)
			n, perr := strconv.Atoi(port)
			if err != nil || h == "" || perr != nil || n < 1 || n > 65535 {
				l.errorf(sp, "%s.address: must be host:port of the runtime API, like 127.0.0.1:9999, got %s", path, quote(s))
			} else {
				hp.Address = s
				l.at(path+".address", sp)
				return hp, true
			}
		}
	default:
		l.errorf(hm.P, "%s: needs socket (a unix socket path) or address (host:port) of the runtime API", path)
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
	sm, ok := top.OptMapping("ssh", sshKeys...)
	if !ok {
		return
	}
	if sm == nil {
		// An empty mapping: only defaults.
		sm = yamlpos.Empty(top.D, "ssh", top.KeyPos("ssh"))
	}
	if s, sp, ok := sm.NonEmpty("user", false, ""); ok {
		if strings.HasPrefix(s, "-") || strings.ContainsAny(s, " \t\r\n@:/") {
			l.errorf(sp, "ssh.user: must be a user name, got %s", quote(s))
		} else {
			p.SSH.User = s
			l.at("ssh.user", sp)
		}
	} else if !sm.Has("user") {
		// The current user, found by resolve: looking it up may read
		// /etc/passwd.
		l.later.defaultUser, l.later.sshAt = true, sm.P
	}
	if s, sp, ok := sm.NonEmpty("identity_file", false, ""); ok {
		if abs, msg := l.localPath(s); msg != "" {
			l.errorf(sp, "ssh.identity_file: %s", msg)
		} else {
			p.SSH.IdentityFile = abs
			l.at("ssh.identity_file", sp)
			l.refs = append(l.refs, fileRef{key: "ssh.identity_file", at: sp, kind: coordinatorFile, path: p.SSH.IdentityFile})
		}
	}
	if s, sp, ok := sm.NonEmpty("known_hosts", false, ""); ok {
		if abs, msg := l.localPath(s); msg != "" {
			l.errorf(sp, "ssh.known_hosts: %s", msg)
		} else {
			p.SSH.KnownHosts = abs
			l.at("ssh.known_hosts", sp)
			l.refs = append(l.refs, fileRef{key: "ssh.known_hosts", at: sp, kind: coordinatorPath, path: p.SSH.KnownHosts})
		}
	} else if !sm.Has("known_hosts") {
		if home, err := os.UserHomeDir(); err == nil && home != "" {
			p.SSH.KnownHosts = filepath.Join(home, ".ssh", "known_hosts")
		} else {
			l.later.noHome, l.later.sshAt = true, sm.P
		}
	}
	if s, ok := sm.Enum("host_key_checking", string(HostKeyStrict), string(HostKeyStrict), string(HostKeyAcceptNew)); ok {
		p.SSH.HostKeyChecking = HostKeyChecking(s)
	}
	p.SSH.ConnectTimeout, _, _ = sm.Duration("connect_timeout", DefaultConnectTimeout, positive)
	p.SSH.CommandTimeout, _, _ = sm.Duration("command_timeout", DefaultCommandTimeout, positive)
	p.SSH.SessionPerCommand, _ = sm.Boolean("session_per_command", false)
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
		return describeFileError(p, err)
	}
	if fi.IsDir() {
		return fmt.Sprintf("%s is a directory, expected a file", p)
	}
	return ""
}

func describeFileError(p string, err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Sprintf("file %s does not exist", p)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Sprintf("cannot read %s: %v", p, err)
}
