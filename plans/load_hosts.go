package plans

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// ---- hosts ----

// hosts decodes the inline hosts, or notes the inventory for resolve; it
// reports whether every host decoded cleanly (so that per-host checks such
// as the health URL are meaningful).
func (l *loader) hosts(top *mapping, p *Plan, hasLB bool) bool {
	if top.Has("inventory") {
		if top.Has("hosts") {
			l.errorf(top.KeyPos("inventory"), "inventory: set either hosts or inventory, not both")
			return false
		}
		file, fp, ok := top.NonEmpty("inventory", false, "")
		if !ok {
			return false
		}
		resolved, msg := l.localPath(file)
		if msg != "" {
			l.errorf(fp, "inventory: %s", msg)
			return false
		}
		// Read by resolve, not here: decoding touches no file.
		l.at("inventory", fp)
		l.later.inventory = &inventoryRef{file: file, at: fp, path: resolved}
		return false
	}
	v, present, ok := top.Get("hosts")
	if !present {
		top.Missing("hosts", "a list of hosts, or inventory: FILE")
		return false
	}
	if !ok {
		return false
	}
	return l.hostList(top.D, v, p, hasLB)
}

func (l *loader) hostList(d *doc, v value, p *Plan, hasLB bool) bool {
	if v.K == kNull || v.K == kSeq && len(v.N.(*ast.SequenceNode).Values) == 0 {
		l.errorf(v.P, "hosts: must list at least one host, got %s", v)
		return false
	}
	if v.K != kSeq {
		l.errorf(v.P, "hosts: must be a list of hosts (each with name and address), got %s", v)
		return false
	}
	var at []hostAt
	for i, e := range v.N.(*ast.SequenceNode).Values {
		hp := index("hosts", i)
		ev, ok := d.Value(e, hp)
		if !ok {
			continue
		}
		if ev.K != kMap {
			l.errorf(ev.P, "%s: must be a mapping with name and address, got %s", hp, ev)
			continue
		}
		m, _ := d.Mapping(ev, hp, hostKeys...)
		h := Host{Transport: TransportSSH}
		ha := hostAt{path: hp}
		if s, sp, ok := m.NonEmpty("name", true, "a short unique name like web1"); ok {
			ha.nameP = sp
			if IsSafeName(s) {
				h.Name, ha.hasName = s, true
			} else {
				l.errorf(sp, "%s.name: must be a safe name (%s), got %s", hp, safeNameRule, quote(s))
			}
		}
		if s, sp, ok := m.NonEmpty("address", true, "host or host:port"); ok {
			ha.addrP = sp
			if addr, msg := parseHostAddress(s); msg != "" {
				l.errorf(sp, "%s.address: %s", hp, msg)
			} else {
				h.Address, ha.hasAddr = addr, true
			}
		}
		switch {
		case hasLB:
			if s, sp, ok := m.NonEmpty("lb_server", true, "the HAProxy <backend>/<server>, required because load_balancer is set"); ok {
				ha.lbP = sp
				if isLBServer(s) {
					h.LBServer, ha.hasLB = s, true
				} else {
					l.errorf(sp, "%s.lb_server: must be <backend>/<server> as named in HAProxy, like web/web1, got %s", hp, quote(s))
				}
			}
		case m.Has("lb_server"):
			l.errorf(m.KeyPos("lb_server"), "%s.lb_server: set, but no load_balancer is configured: the host would never be drained; add load_balancer.haproxy or remove lb_server", hp)
		}
		if t, ok := m.Enum("transport", string(TransportSSH), string(TransportSSH), string(TransportAgent)); ok {
			h.Transport = Transport(t)
			if v, _, ok := m.Get("transport"); ok && h.Transport == TransportAgent {
				l.at(hp+".transport", v.P) // for errors of the agents (Plan.Keys)
			}
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
				l.errorf(ha.nameP, "%s.name: duplicate host name %s (also %s, line %d)", ha.path, quote(h.Name), first.path, first.nameP.Line)
			} else {
				names[h.Name] = ha
			}
		}
		if ha.hasAddr {
			key := strings.ToLower(h.Address)
			if first, dup := addrs[key]; dup {
				l.errorf(ha.addrP, "%s.address: duplicate address %s (also %s, line %d)", ha.path, h.Address, first.path, first.addrP.Line)
			} else {
				addrs[key] = ha
			}
		}
		if ha.hasLB {
			if first, dup := servers[h.LBServer]; dup {
				l.errorf(ha.lbP, "%s.lb_server: duplicate lb_server %s (also %s, line %d)", ha.path, h.LBServer, first.path, first.lbP.Line)
			} else {
				servers[h.LBServer] = ha
			}
		}
	}
	clean := len(at) == len(v.N.(*ast.SequenceNode).Values)
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
