package lab

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// deadMAC is the link-layer address Isolate gives a cut peer: unicast,
// locally administered, owned by no interface, so frames sent to it are
// flooded by the bridge and dropped by every receiver.
const deadMAC = "02:00:5e:00:de:ad"

// netNode is what a cut needs about a node.
type netNode struct {
	name, ns, addr, dev string
}

// netNode returns one of the lab's nodes with its address and the device
// holding it (the bridge in the control namespace, eth0 elsewhere).
func (l *Lab) netNode(name string) (netNode, error) {
	ns, err := l.nodeNS(name)
	if err != nil {
		return netNode{}, err
	}
	for _, n := range l.topo.Nodes {
		if n.Name != name {
			continue
		}
		dev := "eth0"
		if n.Role == RoleControl {
			dev = bridgeName(l.ID)
		}
		return netNode{name: name, ns: ns, addr: n.Address.String(), dev: dev}, nil
	}
	return netNode{}, fmt.Errorf("lab %s: node %q is not in the topology", l.ID, name)
}

func cutKey(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}

// Isolate cuts all IP traffic between node and each of from, both ways, like
// a network partition: packets are silently lost (a connect times out, an
// open TCP connection stalls), nothing is refused. Every other path stays up:
// a coordinator isolated from the other coordinators still reaches the web
// hosts, the balancer and ctl. Isolating an already cut pair is a no-op. Heal
// undoes it.
//
// How: each side gets a permanent neighbour (ARP) entry that maps the other's
// address to a MAC no interface has, so what it sends to the other never
// arrives; established connections are cut as well.
func (l *Lab) Isolate(ctx context.Context, node string, from ...string) error {
	if len(from) == 0 {
		return fmt.Errorf("lab %s: Isolate %s: from no node", l.ID, node)
	}
	a, err := l.netNode(node)
	if err != nil {
		return err
	}
	var peers []netNode
	for _, f := range from {
		b, err := l.netNode(f)
		if err != nil {
			return err
		}
		if b.name == a.name {
			return fmt.Errorf("lab %s: Isolate %s from itself", l.ID, node)
		}
		peers = append(peers, b)
	}
	l.netMu.Lock()
	defer l.netMu.Unlock()
	if l.cuts == nil {
		l.cuts = map[[2]string]bool{}
	}
	batches := map[string][]string{}
	for _, b := range peers {
		// Recorded first: Heal undoes even a cut that failed half way.
		l.cuts[cutKey(a.name, b.name)] = true
		batches[a.ns] = append(batches[a.ns], "neigh replace "+b.addr+" lladdr "+deadMAC+" nud permanent dev "+a.dev)
		batches[b.ns] = append(batches[b.ns], "neigh replace "+a.addr+" lladdr "+deadMAC+" nud permanent dev "+b.dev)
	}
	if err := runBatches(ctx, batches); err != nil {
		return fmt.Errorf("lab %s: Isolate %s from %v: %w", l.ID, node, from, err)
	}
	return nil
}

// Heal removes every cut involving node (Isolate's, whichever side named it).
// Healing a node with no cut is a no-op.
func (l *Lab) Heal(ctx context.Context, node string) error {
	a, err := l.netNode(node)
	if err != nil {
		return err
	}
	l.netMu.Lock()
	defer l.netMu.Unlock()
	batches := map[string][]string{}
	var healed [][2]string
	for k := range l.cuts {
		other := k[0]
		switch node {
		case k[0]:
			other = k[1]
		case k[1]:
		default:
			continue
		}
		b, err := l.netNode(other)
		if err != nil {
			return err
		}
		// flush, unlike del, accepts an entry that is already gone.
		batches[a.ns] = append(batches[a.ns], "neigh flush to "+b.addr+" dev "+a.dev+" nud permanent")
		batches[b.ns] = append(batches[b.ns], "neigh flush to "+a.addr+" dev "+b.dev+" nud permanent")
		healed = append(healed, k)
	}
	if err := runBatches(ctx, batches); err != nil {
		return fmt.Errorf("lab %s: Heal %s: %w", l.ID, node, err)
	}
	for _, k := range healed {
		delete(l.cuts, k)
	}
	return nil
}

// Cuts lists the node pairs Isolate has cut and Heal not yet restored, each
// pair and the list sorted.
func (l *Lab) Cuts() [][2]string {
	l.netMu.Lock()
	defer l.netMu.Unlock()
	out := make([][2]string, 0, len(l.cuts))
	for k := range l.cuts {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i][0] != out[j][0] {
			return out[i][0] < out[j][0]
		}
		return out[i][1] < out[j][1]
	})
	return out
}

// runBatches runs one `ip -n NS -batch` per namespace.
func runBatches(ctx context.Context, batches map[string][]string) error {
	var errs []error
	for ns, lines := range batches {
		if err := ipBatch(ctx, ns, lines); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
