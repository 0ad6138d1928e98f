package plans

// Batches groups the hosts, in plan order, by the strategy's ramp: each
// entry of Strategy.Batches sizes one batch and the last one repeats.
// Percentages are of the whole fleet, rounded up. A batch is never empty,
// and a size larger than what remains takes the rest.
func (p *Plan) Batches() [][]Host {
	ramp := p.Strategy.Batches
	if len(ramp) == 0 {
		ramp = []Size{{N: 1}}
	}
	total := len(p.Hosts)
	var out [][]Host
	for next, i := 0, 0; next < total; i++ {
		n := ramp[min(i, len(ramp)-1)].Of(total)
		n = max(1, min(n, total-next))
		batch := make([]Host, n)
		copy(batch, p.Hosts[next:next+n])
		out = append(out, batch)
		next += n
	}
	return out
}

// MaxFailures is the failure budget resolved against the host count: how
// many hosts may fail before the rollout stops.
func (p *Plan) MaxFailures() int {
	total := len(p.Hosts)
	return max(0, min(p.Strategy.MaxFailures.Of(total), total))
}

// HostByName finds a host by its name.
func (p *Plan) HostByName(name string) (Host, bool) {
	for _, h := range p.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}
