package plans

import "fmt"

// Position is where a plan key is written, 1-based; Line 0 is a value
// given on the command line (File "--set").
type Position struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

// String renders the position as FILE:LINE:COL (FILE alone for Line 0).
func (p Position) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Where names a key for a message about its value: "FILE:LINE:COL: key"
// when the plan says where it is written (Keys), else the key alone (a
// default, or a plan recorded before Keys existed).
func (p *Plan) Where(key string) string {
	if at, ok := p.Keys[key]; ok && at.File != "" {
		return at.String() + ": " + key
	}
	return key
}

// HAProxyKey is the key of the i-th HAProxy instance's runtime API as the
// plan writes it: load_balancer.haproxy.socket for a single instance
// written as a mapping, load_balancer.haproxy[i].address in a list.
func (p *Plan) HAProxyKey(i int) string {
	field := "socket"
	if p.LoadBalancer.HAProxy[i].Socket == "" {
		field = "address"
	}
	list := fmt.Sprintf("load_balancer.haproxy[%d].%s", i, field)
	if _, ok := p.Keys[list]; ok || len(p.LoadBalancer.HAProxy) > 1 {
		return list
	}
	return "load_balancer.haproxy." + field
}

// HostKey is the key of a field of the host named name: "hosts[2].transport".
func (p *Plan) HostKey(name, field string) string {
	for i, h := range p.Hosts {
		if h.Name == name {
			return fmt.Sprintf("hosts[%d].%s", i, field)
		}
	}
	return "hosts." + field
}
