package lab

import (
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"
)

// defaultTopology is lab/topology.yaml, the file the Vagrantfile reads too.
//
//go:embed topology.yaml
var defaultTopology []byte

// Role is what a node does in the lab.
type Role string

// Node roles.
const (
	RoleControl     Role = "control"     // the operator's machine: drover CLI, load generator
	RoleBalancer    Role = "balancer"    // HAProxy
	RoleCoordinator Role = "coordinator" // drover server
	RoleWeb         Role = "web"         // sshd + demo app behind the balancer
)

// Topology is the lab's network: one node per machine. Load it with
// LoadTopology or DefaultTopology; both validate it.
type Topology struct {
	Network  netip.Prefix `yaml:"network" json:"network"`
	App      AppSpec      `yaml:"app" json:"app"`
	Balancer BalancerSpec `yaml:"balancer" json:"balancer"`
	Nodes    []Node       `yaml:"nodes" json:"nodes"`
}

// AppSpec describes the demo app on the web hosts.
type AppSpec struct {
	Port        int    `yaml:"port" json:"port"`
	ReleasePath string `yaml:"release_path" json:"release_path"`
}

// BalancerSpec describes HAProxy on the balancer node.
type BalancerSpec struct {
	FrontendPort int    `yaml:"frontend_port" json:"frontend_port"`
	Backend      string `yaml:"backend" json:"backend"`
}

// Node is one machine of the topology.
type Node struct {
	Name     string     `yaml:"name" json:"name"`
	Address  netip.Addr `yaml:"address" json:"address"`
	Role     Role       `yaml:"role" json:"role"`
	LBServer string     `yaml:"lb_server,omitempty" json:"lb_server,omitempty"` // web only: "<backend>/<server>"
}

// DefaultTopology returns the embedded lab/topology.yaml.
func DefaultTopology() *Topology {
	t, err := ParseTopology(defaultTopology)
	if err != nil {
		panic("lab: embedded topology.yaml is invalid: " + err.Error())
	}
	return t
}

// LoadTopology reads and validates a topology file.
func LoadTopology(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := ParseTopology(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseTopology decodes (strictly: unknown keys are errors) and validates a
// topology document.
func ParseTopology(data []byte) (*Topology, error) {
	var t Topology
	if err := yaml.UnmarshalWithOptions(data, &t, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("topology: %s", yaml.FormatError(err, false, true))
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	return &t, nil
}

var hostnameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

func (t *Topology) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !t.Network.IsValid() || !t.Network.Addr().Is4() {
		bad("network: an IPv4 prefix is required (got %q)", t.Network)
	}
	if t.App.Port < 1 || t.App.Port > 65535 {
		bad("app.port: %d is not a port", t.App.Port)
	}
	if !strings.HasPrefix(t.App.ReleasePath, "/") {
		bad("app.release_path: an absolute path is required (got %q)", t.App.ReleasePath)
	}
	if t.Balancer.FrontendPort < 1 || t.Balancer.FrontendPort > 65535 {
		bad("balancer.frontend_port: %d is not a port", t.Balancer.FrontendPort)
	}
	if !hostnameRE.MatchString(t.Balancer.Backend) {
		bad("balancer.backend: %q is not a valid backend name", t.Balancer.Backend)
	}
	names := map[string]bool{}
	addrs := map[netip.Addr]string{}
	servers := map[string]string{}
	count := map[Role]int{}
	for i, n := range t.Nodes {
		where := fmt.Sprintf("nodes[%d] (%s)", i, n.Name)
		if !hostnameRE.MatchString(n.Name) {
			bad("%s: name must match %s", where, hostnameRE)
		} else if names[n.Name] {
			bad("%s: duplicate name", where)
		}
		names[n.Name] = true
		switch {
		case !n.Address.IsValid():
			bad("%s: address is required", where)
		case t.Network.IsValid() && !t.Network.Contains(n.Address):
			bad("%s: address %s is outside network %s", where, n.Address, t.Network)
		case n.Address == t.Network.Masked().Addr():
			bad("%s: address %s is the network address", where, n.Address)
		case addrs[n.Address] != "":
			bad("%s: address %s already used by %s", where, n.Address, addrs[n.Address])
		default:
			addrs[n.Address] = n.Name
		}
		count[n.Role]++
		switch n.Role {
		case RoleWeb:
			b, s, ok := strings.Cut(n.LBServer, "/")
			switch {
			case !ok || s == "" || strings.Contains(s, "/"):
				bad("%s: lb_server must be <backend>/<server> (got %q)", where, n.LBServer)
			case b != t.Balancer.Backend:
				bad("%s: lb_server backend %q is not balancer.backend %q", where, b, t.Balancer.Backend)
			case servers[s] != "":
				bad("%s: lb_server %q already used by %s", where, n.LBServer, servers[s])
			default:
				servers[s] = n.Name
			}
		case RoleControl, RoleBalancer, RoleCoordinator:
			if n.LBServer != "" {
				bad("%s: lb_server is only for role web", where)
			}
		default:
			bad("%s: unknown role %q (control, balancer, coordinator or web)", where, n.Role)
		}
	}
	if count[RoleControl] != 1 {
		bad("exactly one node with role control is required (found %d)", count[RoleControl])
	}
	if count[RoleBalancer] != 1 {
		bad("exactly one node with role balancer is required (found %d)", count[RoleBalancer])
	}
	if count[RoleWeb] == 0 {
		bad("at least one node with role web is required")
	}
	return errors.Join(errs...)
}

// ByRole returns the nodes with the given role, in file order.
func (t *Topology) ByRole(r Role) []Node {
	var out []Node
	for _, n := range t.Nodes {
		if n.Role == r {
			out = append(out, n)
		}
	}
	return out
}

// Control returns the control node.
func (t *Topology) Control() Node { return t.ByRole(RoleControl)[0] }

// BalancerNode returns the balancer node.
func (t *Topology) BalancerNode() Node { return t.ByRole(RoleBalancer)[0] }

// PrefixLen is the network's prefix length, for interface addresses.
func (t *Topology) PrefixLen() int { return t.Network.Bits() }

// ServerName is the HAProxy server part of a web node's lb_server.
func (n Node) ServerName() string {
	_, s, _ := strings.Cut(n.LBServer, "/")
	return s
}
