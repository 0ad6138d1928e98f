package orchestrator

// Why hosts were refused in preflight, each cause once: a cause that one
// plan key names (a wrong HAProxy socket, a key file the hosts refuse, a
// known_hosts without their keys, agents that never connected) is the
// key's line, at its FILE:LINE:COL, with the hosts it stopped.

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/transport/agent"
	"github.com/drover-dev/drover/transport/ssh"
)

// keyCause is a cause of a host's refusal that a plan key names.
type keyCause struct {
	key    string // the key as reported: "load_balancer.haproxy.socket", "hosts[3].transport"
	family string // what groups hosts: the key, or "hosts[].transport" for a per-host key
	msg    string // the cause, the same for every host it stops
	// alone: the key's line even for one host. A host key's own message
	// (its fingerprint, the ssh-keyscan to run), or an agent's (when it
	// was last seen), says more about one host than the shared line does.
	alone bool
}

// causeOf finds in a host's preflight error a cause that a plan key names.
func causeOf(p *plans.Plan, h plans.Host, err error) (keyCause, bool) {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		// The runtime API of an instance cannot be reached: its driver
		// names it as the plan does.
		for i, hp := range p.LoadBalancer.HAProxy {
			if api := hp.Socket + hp.Address; strings.Contains(err.Error(), "runtime API "+api+": ") {
				key := p.HAProxyKey(i)
				return keyCause{key: key, family: key, msg: oe.Error(), alone: true}, true
			}
		}
	}
	switch {
	case errors.Is(err, ssh.ErrAuthFailed):
		key := "ssh.identity_file"
		if p.SSH.IdentityFile == "" {
			key = "ssh.user"
		}
		if msg, ok := hostless(err.Error(), h, h.Address+": "); ok {
			return keyCause{key: key, family: key, msg: msg, alone: true}, true
		}
	case errors.Is(err, ssh.ErrHostKeyUnknown):
		return keyCause{key: "ssh.known_hosts", family: "ssh.known_hosts", msg: fmt.Sprintf(
			"host key unknown: %s has no entry for these hosts; verify each fingerprint, then add it (ssh-keyscan -p PORT ADDRESS >> %s), or set ssh.host_key_checking: accept-new",
			p.SSH.KnownHosts, p.SSH.KnownHosts)}, true
	case errors.Is(err, ssh.ErrHostKeyChanged):
		return keyCause{key: "ssh.known_hosts", family: "ssh.known_hosts", msg: fmt.Sprintf(
			"host key changed: these hosts presented keys other than those %s records (reinstalled, or someone is intercepting); verify each one, drover never replaces a recorded key",
			p.SSH.KnownHosts)}, true
	case errors.Is(err, agent.ErrOffline):
		return keyCause{key: p.HostKey(h.Name, "transport"), family: "hosts[].transport",
			msg: "agent is offline: not connected to this cluster's coordinators (is `drover agent` running on the host, and can it reach them?)"}, true
	case errors.Is(err, ErrTransportUnavailable):
		if msg, ok := hostless(err.Error(), h, h.Name+": "); ok {
			return keyCause{key: p.HostKey(h.Name, "transport"), family: "hosts[].transport", msg: msg, alone: true}, true
		}
	}
	return keyCause{}, false
}

// healthKey is the plan key that defines the health check.
func healthKey(h plans.Health) string {
	switch {
	case h.HTTP != nil:
		return "health.http.url"
	case h.TCP != nil:
		return "health.tcp.port"
	}
	return "health.command"
}

// sharedCheck says, for a failure summary, where the health check is
// written when every failed host failed it: a wrong URL or port, not the
// release, is the likely cause. "" otherwise.
func sharedCheck(p *plans.Plan, d deploy.Deployment, failed []string) string {
	key := healthKey(p.Health)
	where := p.Where(key)
	if where == key {
		return "" // no position: nothing to add
	}
	for _, h := range failed {
		if hp := d.Hosts[h]; hp == nil || !strings.Contains(hp.Error, where+": ") {
			return ""
		}
	}
	return "; each failed the health check at " + where
}

// hostless is the part of msg after its last prefix, when that part no
// longer names the host.
func hostless(msg string, h plans.Host, prefix string) (string, bool) {
	i := strings.LastIndex(msg, prefix)
	if i < 0 {
		return "", false
	}
	rest := msg[i+len(prefix):]
	if rest == "" || strings.Contains(rest, h.Name) || strings.Contains(rest, h.HostOnly()) {
		return "", false
	}
	return rest, true
}

// preflightError lists why hosts were refused, each cause once with the
// hosts it stopped: a cause shared by the fleet (a balancer down, a key
// file unreadable) is one line, not one per host, and points at the plan
// key that names it when one does.
type preflightError struct {
	causes []*cause          // in the order first seen
	byText map[string]*cause // by cause text (and family, for a key's)
	first  error
}

// cause is one line of a preflightError.
type cause struct {
	text  string   // a plan key's: "FILE:LINE:COL: key: why"; else why
	keyed bool     // text is a plan key's line
	hosts []string // those it stopped; "" for a message that names its host
}

// newPreflightError groups the errors of the hosts named (nil: passed).
func newPreflightError(p *plans.Plan, hosts map[string]plans.Host, names []string, errs []error) *preflightError {
	keyed := make([]keyCause, len(errs))
	found := make([]bool, len(errs))
	count := map[string]int{}
	for i, err := range errs {
		if err != nil {
			keyed[i], found[i] = causeOf(p, hosts[names[i]], err)
			count[keyed[i].family+"\n"+keyed[i].msg]++
		}
	}
	e := &preflightError{byText: map[string]*cause{}}
	for i, err := range errs {
		if err == nil {
			continue
		}
		if e.first == nil {
			e.first = err
		}
		k := keyed[i]
		if id := k.family + "\n" + k.msg; found[i] && (k.alone || count[id] > 1) {
			c, seen := e.byText[id]
			if !seen {
				// At the key of the first host stopped (a per-host key).
				c = &cause{text: p.Where(k.key) + ": " + k.msg, keyed: true}
				e.byText[id] = c
				e.causes = append(e.causes, c)
			}
			c.hosts = append(c.hosts, names[i])
			continue
		}
		e.add(names[i], err)
	}
	return e
}

// add records a cause that no plan key names.
func (e *preflightError) add(host string, err error) {
	// Host errors start with the host's name; a message that names it
	// again further on is that host's own.
	text := strings.TrimPrefix(err.Error(), host+": ")
	if strings.Contains(text, host) {
		text = err.Error()
		host = ""
	}
	c, seen := e.byText[text]
	if !seen {
		c = &cause{text: text}
		e.byText[text] = c
		e.causes = append(e.causes, c)
	}
	c.hosts = append(c.hosts, host)
}

// maxNamed is how many hosts a shared cause lists before "and N more".
const maxNamed = 5

func (e *preflightError) Error() string {
	var b strings.Builder
	b.WriteString("preflight failed, no host was touched:")
	for _, c := range e.causes {
		if c.keyed {
			// Where first, as plan problems are; then whom it stopped.
			if len(c.hosts) == 1 {
				fmt.Fprintf(&b, "\n  %s (%s)", c.text, c.hosts[0])
			} else {
				fmt.Fprintf(&b, "\n  %s (%s: %d hosts)", c.text, hostList(c.hosts), len(c.hosts))
			}
			continue
		}
		var named []string
		for _, h := range c.hosts {
			if h == "" {
				b.WriteString("\n  " + c.text)
			} else {
				named = append(named, h)
			}
		}
		switch len(named) {
		case 0:
		case 1:
			b.WriteString("\n  " + named[0] + ": " + c.text)
		default:
			fmt.Fprintf(&b, "\n  %s (%d hosts): %s", hostList(named), len(named), c.text)
		}
	}
	return b.String()
}

// hostList names hosts, at most maxNamed of them: "web1, web2, web3",
// "web1, web2, web3, web4, web5 and 3 more".
func hostList(hosts []string) string {
	if len(hosts) <= maxNamed {
		return strings.Join(hosts, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(hosts[:maxNamed], ", "), len(hosts)-maxNamed)
}

// Is makes errors.Is(err, ErrPreflight) true, and Unwrap exposes the
// first cause (for example an unknown host key).
func (e *preflightError) Is(target error) bool { return target == ErrPreflight }
func (e *preflightError) Unwrap() error        { return e.first }
