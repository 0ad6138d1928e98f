package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Ports of the coordinators that a DroverCluster runs.
const (
	RaftPort = 7000
	APIPort  = 7443
)

// APIAddr is a coordinator's API address in a DroverCluster.
func APIAddr(n Coordinator) string { return fmt.Sprintf("%s:%d", n.Address, APIPort) }

// DroverCluster is a drover coordinator cluster on the lab's coordinator
// nodes: TLS made with the drover binary's own `drover tls`, one `drover
// server` per node, each on its own address. It is what the end-to-end
// tests and the demo run.
type DroverCluster struct {
	lab    *Lab
	drover string
	TLSDir string
	Token  string // the bootstrap management token
	Procs  map[string]*Proc
}

// NewDroverCluster makes the cluster's CA, a server certificate per
// coordinator and a client certificate "ops", with `drover tls`. It starts
// no server (see Start).
func (l *Lab) NewDroverCluster(ctx context.Context, drover string) (*DroverCluster, error) {
	c := &DroverCluster{lab: l, drover: drover, TLSDir: filepath.Join(l.Dir, "tls"), Procs: map[string]*Proc{}}
	steps := [][]string{{"tls", "init", "--dir", c.TLSDir}}
	for _, n := range l.Coordinators {
		steps = append(steps, []string{"tls", "issue", "server", n.Name, "--ip", n.Address, "--dir", c.TLSDir})
	}
	steps = append(steps, []string{"tls", "issue", "client", "ops", "--dir", c.TLSDir})
	for _, args := range steps {
		if out, err := l.Command(ctx, drover, args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("drover %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	tok, err := os.ReadFile(filepath.Join(c.TLSDir, "bootstrap.token"))
	if err != nil {
		return nil, err
	}
	c.Token = strings.TrimSpace(string(tok))
	return c, nil
}

// Start runs `drover server` for coordinator name in its namespace, on its
// data dir (a restart finds its state there): the first one with
// --bootstrap, the others joining through the rest.
func (c *DroverCluster) Start(ctx context.Context, name string, bootstrap bool) (*Proc, error) {
	var n Coordinator
	var join []string
	for _, o := range c.lab.Coordinators {
		if o.Name == name {
			n = o
		} else {
			join = append(join, APIAddr(o))
		}
	}
	if n.Name == "" {
		return nil, fmt.Errorf("no coordinator %s in lab %s", name, c.lab.ID)
	}
	args := []string{c.drover, "server", "--node-id", name,
		"--data-dir", filepath.Join(c.lab.Dir, "coord", name), "--tls-dir", c.TLSDir,
		"--raft-addr", fmt.Sprintf("%s:%d", n.Address, RaftPort), "--http-addr", APIAddr(n),
		// What the lab's plans name; the TLS dir (bootstrap token, CA key) stays out.
		"--plan-files", c.lab.IdentityFile, "--plan-files", c.lab.KnownHosts}
	for _, inst := range c.lab.HAProxies {
		args = append(args, "--plan-files", inst.Socket)
	}
	if bootstrap {
		args = append(args, "--bootstrap")
	} else {
		args = append(args, "--join", strings.Join(join, ","))
	}
	p, err := c.lab.Start(ctx, name, "drover-"+name, args, nil)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c.Procs[name] = p
	return p, nil
}

// Env is what an operator exports to talk to the cluster through nodes
// (all of them when none are given).
func (c *DroverCluster) Env(nodes ...Coordinator) []string {
	if len(nodes) == 0 {
		nodes = c.lab.Coordinators
	}
	var as []string
	for _, n := range nodes {
		as = append(as, APIAddr(n))
	}
	return []string{
		"DROVER_ADDR=" + strings.Join(as, ","),
		"DROVER_CA=" + filepath.Join(c.TLSDir, "ca.crt"),
		"DROVER_CLIENT_CERT=" + filepath.Join(c.TLSDir, "ops.crt"),
		"DROVER_CLIENT_KEY=" + filepath.Join(c.TLSDir, "ops.key"),
		"DROVER_TOKEN=" + c.Token,
	}
}
