// Package lab is drover's test lab on one machine: a bridge and one network
// namespace per node, a real OpenSSH sshd on every web host (each with its own
// /srv and host name through a private mount and UTS namespace), HAProxy with
// its runtime API in front of them, the demo app's release artifacts, a plan
// writer and a load generator. The end-to-end tests and `make demo` use it.
// For coordinator tests it also runs processes in coordinator namespaces
// (Start), cuts the network between nodes (Isolate, Heal) and records, on the
// hosts' and HAProxy's side, every command sent to them (HostAudit, LBAudit).
//
// The lab needs root, iproute2, OpenSSH (sshd, ssh-keygen) and haproxy. It
// sends traffic only inside its own namespaces. Two labs can run at once;
// leftovers of a crashed run are removed by the next Up (see CleanStale).
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure Up. The zero value is a lab with every web host of the
// default topology and no coordinators.
type Options struct {
	Topology *Topology // nil: the embedded lab/topology.yaml
	Hosts    int       // the first N web hosts; 0: DefaultHosts
	// SlowRC makes each web host's login shell bash with an rc file that
	// costs about RCDelay, like a production host whose ~/.bashrc runs a
	// version manager's init: every SSH session pays it once.
	SlowRC       bool
	Coordinators int    // the first N coordinator namespaces (addresses only); default 0
	Dir          string // lab directory; "": a new temp dir that Down removes
	// HAProxies is how many HAProxy instances front the web hosts (2: a
	// pair, as in production); default 1. See HAProxyInstance.
	HAProxies int
	Log       io.Writer // progress lines; nil: discarded
}

// Host is a web host of a running lab.
type Host struct {
	Name       string `json:"name"`
	Address    string `json:"address"`     // IP, no port
	SSHAddress string `json:"ssh_address"` // "ip:22"
	NS         string `json:"ns"`          // network namespace
	LBServer   string `json:"lb_server"`   // "web/web1"
	SrvDir     string `json:"srv_dir"`     // the directory the host sees as /srv
}

// Coordinator is a coordinator node: a namespace with its address, in which
// the caller runs `drover server` (see CommandIn).
type Coordinator struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	NS      string `json:"ns"`
}

// Lab is a running lab. Its exported fields describe it (and marshal to the
// JSON that `drover-lab up` prints); its methods are safe for concurrent use.
type Lab struct {
	ID            string        `json:"id"`
	Dir           string        `json:"dir"`
	CtlNS         string        `json:"ctl_ns"`
	LBNS          string        `json:"lb_ns"`
	Hosts         []Host        `json:"hosts"`
	Coordinators  []Coordinator `json:"coordinators,omitempty"`
	HAProxySocket string        `json:"haproxy_socket"` // the first instance's
	// HAProxies are every HAProxy instance, the first one included.
	HAProxies []HAProxyInstance `json:"haproxies"`
	// HAProxyAddress is HAProxy's runtime API over TCP ("10.200.0.2:9999"),
	// reachable from every node: a relay in the balancer namespace logs each
	// command (LBAudit) and passes it on to HAProxySocket.
	HAProxyAddress string `json:"haproxy_address"`
	Backend        string `json:"backend"`
	FrontendURL    string `json:"frontend_url"`
	User           string `json:"user"`
	IdentityFile   string `json:"identity_file"`
	KnownHosts     string `json:"known_hosts"`
	ReleasePath    string `json:"release_path"`
	AppPort        int    `json:"app_port"`
	// SlowRC: root's login shell on the web hosts is bash with a ~/.bashrc
	// costing RCDelay (Options.SlowRC).
	SlowRC bool `json:"slow_rc,omitempty"`

	topo *Topology
	log  io.Writer

	mu      sync.Mutex
	rec     record
	daemons map[string]*daemon // "sshd/web1", "haproxy"
	isDown  bool
	downErr error

	toolMu   sync.Mutex
	toolPath string

	sftpServer string // sftp-server program, for sshd's Subsystem

	netMu sync.Mutex
	cuts  map[[2]string]bool // Isolate's cuts, as sorted node name pairs
}

// DefaultHosts is how many web hosts a lab has when Options.Hosts is 0:
// the classic lab. The topology has room for production-shaped fleets.
const DefaultHosts = 8

// Up creates a lab: it first removes stale labs, then the namespaces and the
// network, the keys, one sshd per web host (with the host audit), HAProxy and
// the audited TCP relay to its runtime API. On failure it removes whatever it
// made.
func Up(ctx context.Context, opts Options) (_ *Lab, err error) {
	start := time.Now()
	if err := checkPrerequisites(); err != nil {
		return nil, err
	}
	topo := opts.Topology
	if topo == nil {
		topo = DefaultTopology()
	}
	webs := topo.ByRole(RoleWeb)
	switch {
	case opts.Hosts < 0 || opts.Hosts > len(webs):
		return nil, fmt.Errorf("lab: %d hosts asked, the topology has %d web hosts", opts.Hosts, len(webs))
	case opts.Hosts > 0:
		webs = webs[:opts.Hosts]
	default:
		webs = webs[:min(DefaultHosts, len(webs))]
	}
	coords := topo.ByRole(RoleCoordinator)
	if opts.Coordinators < 0 || opts.Coordinators > len(coords) {
		return nil, fmt.Errorf("lab: %d coordinators asked, the topology has %d", opts.Coordinators, len(coords))
	}
	coords = coords[:opts.Coordinators]
	log := opts.Log
	if log == nil {
		log = io.Discard
	}

	if _, err := CleanStale(ctx, log); err != nil {
		fmt.Fprintf(log, "lab: stale cleanup: %v\n", err)
	}

	id, err := newID(ctx)
	if err != nil {
		return nil, err
	}
	l := &Lab{
		ID:          id,
		CtlNS:       nsName(id, topo.Control().Name),
		LBNS:        nsName(id, topo.BalancerNode().Name),
		Backend:     topo.Balancer.Backend,
		FrontendURL: frontendURL(topo),
		User:        "root",
		ReleasePath: topo.App.ReleasePath,
		AppPort:     topo.App.Port,
		topo:        topo,
		log:         log,
		daemons:     map[string]*daemon{},
		SlowRC:      opts.SlowRC,
	}
	l.rec = record{ID: id, OwnerPID: os.Getpid(), OwnerStart: processStartTime(os.Getpid()), Created: time.Now().UTC()}
	if opts.Dir == "" {
		if l.Dir, err = os.MkdirTemp("", "drover-lab-"+id+"-"); err != nil {
			return nil, err
		}
		l.rec.RemoveDir = true
	} else {
		if l.Dir, err = filepath.Abs(opts.Dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(l.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	l.rec.Dir = l.Dir
	if strings.ContainsAny(l.Dir, " \t\n\"'%#\\") {
		if l.rec.RemoveDir {
			os.RemoveAll(l.Dir)
		}
		return nil, fmt.Errorf("lab: dir %q: sshd_config cannot hold blanks, quotes, '%%' or '#' in paths", l.Dir)
	}
	if opts.HAProxies < 0 || opts.HAProxies > 9 {
		if l.rec.RemoveDir {
			os.RemoveAll(l.Dir)
		}
		return nil, fmt.Errorf("lab: %d HAProxy instances asked, want 1 to 9", opts.HAProxies)
	}
	l.HAProxies = l.haproxyInstances(max(opts.HAProxies, 1))
	l.HAProxySocket = l.HAProxies[0].Socket
	for _, inst := range l.HAProxies {
		if len(inst.Socket) >= 104 {
			if l.rec.RemoveDir {
				os.RemoveAll(l.Dir)
			}
			return nil, fmt.Errorf("lab: socket path %s is too long for a unix socket; use a shorter Dir", inst.Socket)
		}
	}
	l.HAProxyAddress = net.JoinHostPort(topo.BalancerNode().Address.String(), strconv.Itoa(haproxyAdminPort))
	l.IdentityFile = filepath.Join(l.Dir, "id_ed25519")
	l.KnownHosts = filepath.Join(l.Dir, "known_hosts")
	for _, n := range webs {
		l.Hosts = append(l.Hosts, Host{
			Name:       n.Name,
			Address:    n.Address.String(),
			SSHAddress: net.JoinHostPort(n.Address.String(), "22"),
			NS:         nsName(id, n.Name),
			LBServer:   n.LBServer,
			SrvDir:     filepath.Join(l.Dir, "hosts", n.Name, "srv"),
		})
	}
	for _, n := range coords {
		l.Coordinators = append(l.Coordinators, Coordinator{Name: n.Name, Address: n.Address.String(), NS: nsName(id, n.Name)})
	}
	l.rec.Namespaces = l.namespaces()
	// Registered before anything exists: from here on a crash leaves a
	// record the next Up can clean.
	if err := l.rec.save(); err != nil {
		if l.rec.RemoveDir {
			os.RemoveAll(l.Dir)
		}
		return nil, fmt.Errorf("lab: register: %w", err)
	}
	// The relay runs the drover-lab tool, which may need a build: in the
	// background while the network and sshd come up.
	var tool string
	var toolErr error
	toolDone := make(chan struct{})
	go func() {
		defer close(toolDone)
		tool, toolErr = l.Tool(ctx)
	}()
	defer func() {
		if err != nil {
			<-toolDone // a build writes into l.Dir
			if derr := l.Down(); derr != nil {
				fmt.Fprintf(log, "lab %s: teardown after failed Up: %v\n", id, derr)
			}
		}
	}()

	step := time.Now()
	if err := l.makeNetwork(ctx, webs, coords); err != nil {
		return nil, fmt.Errorf("lab %s: network: %w", id, err)
	}
	fmt.Fprintf(log, "lab %s: %d namespaces and the bridge (%v)\n", id, len(l.rec.Namespaces), since(step))
	step = time.Now()
	if err := l.startSSHDs(ctx); err != nil {
		return nil, fmt.Errorf("lab %s: sshd: %w", id, err)
	}
	fmt.Fprintf(log, "lab %s: keys and %d sshd (%v)\n", id, len(l.Hosts), since(step))
	step = time.Now()
	if err := l.startHAProxies(ctx); err != nil {
		return nil, fmt.Errorf("lab %s: haproxy: %w", id, err)
	}
	fmt.Fprintf(log, "lab %s: %d haproxy (%v)\n", id, len(l.HAProxies), since(step))
	step = time.Now()
	<-toolDone
	if toolErr != nil {
		return nil, fmt.Errorf("lab %s: drover-lab tool for the haproxy relay: %w", id, toolErr)
	}
	if err := l.startRelay(ctx, tool); err != nil {
		return nil, fmt.Errorf("lab %s: %w", id, err)
	}
	fmt.Fprintf(log, "lab %s: haproxy relay on %s (%v)\n", id, l.HAProxyAddress, since(step))
	if err := writeJSONAtomic(filepath.Join(l.Dir, "description.json"), l); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "lab %s: up in %v, dir %s\n", id, since(start), l.Dir)
	return l, nil
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

func frontendURL(t *Topology) string { return frontendURLPort(t, t.Balancer.FrontendPort) }

func frontendURLPort(t *Topology, port int) string {
	a := t.BalancerNode().Address.String()
	if port != 80 {
		a = net.JoinHostPort(a, strconv.Itoa(port))
	}
	return "http://" + a + "/"
}

// checkPrerequisites fails early, with the reason, when the lab cannot run.
func checkPrerequisites() error {
	if os.Geteuid() != 0 {
		return errors.New("lab: needs root (network namespaces, mounts, sshd)")
	}
	var missing []string
	for _, b := range []string{"ip", "unshare", "ssh-keygen", "haproxy", "curl", "date"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if _, err := sshdPath(); err != nil {
		missing = append(missing, "sshd")
	}
	if _, err := sftpServerPath(); err != nil {
		missing = append(missing, "sftp-server")
	}
	if len(missing) > 0 {
		return fmt.Errorf("lab: missing programs: %v (install iproute2, util-linux, openssh-server, openssh-client, haproxy, curl)", missing)
	}
	return nil
}

// newID picks a short random hex ID unused by any lab on the machine.
func newID(ctx context.Context) (string, error) {
	used, err := knownIDs(ctx)
	if err != nil {
		return "", err
	}
	for range 100 {
		b := make([]byte, 3)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		id := hex.EncodeToString(b)
		clash := false
		for _, u := range used {
			clash = clash || u == id
		}
		if _, err := os.Stat(registryPath(id)); err == nil {
			clash = true
		}
		if !clash {
			return id, nil
		}
	}
	return "", errors.New("lab: no free ID")
}

// namespaces lists the lab's namespaces: control first, then the balancer,
// coordinators and web hosts.
func (l *Lab) namespaces() []string {
	out := []string{l.CtlNS, l.LBNS}
	for _, c := range l.Coordinators {
		out = append(out, c.NS)
	}
	for _, h := range l.Hosts {
		out = append(out, h.NS)
	}
	return out
}

// makeNetwork creates the namespaces, the bridge in the control namespace and
// one veth pair per other node, and brings every loopback up.
func (l *Lab) makeNetwork(ctx context.Context, webs, coords []Node) error {
	var add []string
	for _, ns := range l.rec.Namespaces {
		add = append(add, "netns add "+ns)
	}
	if err := ipBatch(ctx, "", add); err != nil {
		return err
	}
	br := bridgeName(l.ID)
	bits := strconv.Itoa(l.topo.PrefixLen())
	ctl := []string{
		"link set lo up",
		"link add " + br + " type bridge",
		"addr add " + l.topo.Control().Address.String() + "/" + bits + " dev " + br,
		"link set " + br + " up",
	}
	type member struct {
		node Node
		ns   string
	}
	members := []member{{l.topo.BalancerNode(), l.LBNS}}
	for _, n := range coords {
		members = append(members, member{n, nsName(l.ID, n.Name)})
	}
	for _, n := range webs {
		members = append(members, member{n, nsName(l.ID, n.Name)})
	}
	for i, m := range members {
		v := vethName(l.ID, i, m.node.Name)
		ctl = append(ctl,
			"link add "+v+" type veth peer name eth0 netns "+m.ns,
			"link set "+v+" master "+br+" up")
	}
	if err := ipBatch(ctx, l.CtlNS, ctl); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(members))
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ipBatch(ctx, m.ns, []string{
				"link set lo up",
				"addr add " + m.node.Address.String() + "/" + bits + " dev eth0",
				"link set eth0 up",
			})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Down removes the lab: it kills every process in its namespaces (sshd,
// HAProxy and its relay, apps started over SSH, the load generator, whatever
// Start started), deletes the
// namespaces (and with them the bridge and the host mount namespaces), the
// lab dir when the lab created it, and the registry entry. It is idempotent.
func (l *Lab) Down() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isDown {
		return l.downErr
	}
	l.isDown = true
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec := l.rec
	l.downErr = teardown(ctx, l.ID, &rec)
	for _, d := range l.daemons {
		select {
		case <-d.done:
		case <-time.After(2 * time.Second):
			l.downErr = errors.Join(l.downErr, fmt.Errorf("%s (pid %d) did not exit", d.name, d.pid()))
		}
	}
	fmt.Fprintf(l.log, "lab %s: down in %v\n", l.ID, since(start))
	return l.downErr
}

// Detach hands the lab over to nobody: a later Up's stale cleanup leaves it
// alone, and only Destroy (`drover-lab down ID`) removes it.
func (l *Lab) Detach() error { return l.setOwner(0, 0) }

// setOwner records another owner process (tests use it to fake a crash).
func (l *Lab) setOwner(pid int, start uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec.OwnerPID, l.rec.OwnerStart = pid, start
	return l.rec.save()
}

// Host returns the web host with the given name.
func (l *Lab) Host(name string) (Host, error) {
	for _, h := range l.Hosts {
		if h.Name == name {
			return h, nil
		}
	}
	return Host{}, fmt.Errorf("lab %s: no web host %q", l.ID, name)
}

// HostNames returns the names of the lab's web hosts.
func (l *Lab) HostNames() []string {
	out := make([]string, len(l.Hosts))
	for i, h := range l.Hosts {
		out[i] = h.Name
	}
	return out
}

// Command prepares a command in the control namespace (where the operator's
// drover CLI runs): `ip netns exec <ctl> name args...`.
func (l *Lab) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.CtlNS, name}, args...)...)
}

// CommandIn prepares a command in the network namespace of any lab node
// ("ctl", "lb", "c1", "web1", ...). For a web host this is its network only,
// not its /srv nor its host name: reach those through ssh.
func (l *Lab) CommandIn(ctx context.Context, node, name string, args ...string) (*exec.Cmd, error) {
	ns, err := l.nodeNS(node)
	if err != nil {
		return nil, err
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...), nil
}

// SSHArgs are the ssh options that reach the lab's hosts with strict host
// key checking: `ssh <SSHArgs...> root@10.200.0.11 cmd`. Run ssh through
// Command (the hosts are reachable from the control namespace only).
func (l *Lab) SSHArgs() []string { return l.sshArgs(l.KnownHosts) }

// sshArgs: ssh keeps the first value of an option, so a different
// known_hosts cannot be appended; it must replace.
func (l *Lab) sshArgs(knownHosts string) []string {
	return []string{
		"-F", "/dev/null",
		"-i", l.IdentityFile,
		"-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes",
		"-o", "ConnectTimeout=5",
		"-o", "LogLevel=ERROR",
	}
}

// SSH prepares `ssh root@<host> script` in the control namespace.
func (l *Lab) SSH(ctx context.Context, host, script string) (*exec.Cmd, error) {
	h, err := l.Host(host)
	if err != nil {
		return nil, err
	}
	args := append(l.SSHArgs(), l.User+"@"+h.Address, script)
	return l.Command(ctx, "ssh", args...), nil
}

// ServedVersion asks a host's app directly (GET http://<address>:<port>/,
// from the control namespace) which version it serves.
func (l *Lab) ServedVersion(ctx context.Context, host string) (string, error) {
	h, err := l.Host(host)
	if err != nil {
		return "", err
	}
	url := "http://" + net.JoinHostPort(h.Address, strconv.Itoa(l.AppPort)) + "/"
	var stderr strings.Builder
	cmd := l.Command(ctx, "curl", "-sS", "--noproxy", "*", "-m", "2", "-f", url)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: GET %s: %w: %s", host, url, err, strings.TrimSpace(stderr.String()))
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return "", fmt.Errorf("%s: GET %s: unexpected answer %q", host, url, out)
	}
	if f[1] != h.Name {
		return "", fmt.Errorf("%s: GET %s: answered by host %q", host, url, f[1])
	}
	return f[0], nil
}
