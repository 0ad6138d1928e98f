package plans

import (
	"maps"
	"slices"
)

// Batches groups the hosts, in plan order, by the strategy's ramp: each
// entry of Strategy.Batches sizes one batch and the last one repeats.
// Percentages are of the whole fleet, rounded up. A batch is never empty,
// and a size larger than what remains takes the rest. With a canary, its
// hosts (the first ones) are the first batch and the ramp sizes the rest.
func (p *Plan) Batches() [][]Host {
	ramp := p.Strategy.Batches
	if len(ramp) == 0 {
		ramp = []Size{{N: 1}}
	}
	total := len(p.Hosts)
	var out [][]Host
	start := 0
	if n := p.CanaryHosts(); n > 0 && total > 0 {
		out = append(out, append([]Host(nil), p.Hosts[:n]...))
		start = n
	}
	for next, i := start, 0; next < total; i++ {
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

// BackendSizes counts the plan's hosts in each load-balancer backend.
func (p *Plan) BackendSizes() map[string]int {
	out := map[string]int{}
	for _, h := range p.Hosts {
		if b := h.Backend(); b != "" {
			out[b]++
		}
	}
	return out
}

// MinInService is how many servers of backend must stay in rotation: 0
// when the plan has no balancer or allows a full outage, else
// strategy.min_in_service resolved against the backend's servers in the
// plan (a plan decoded from an older record, without the key, keeps 0).
func (p *Plan) MinInService(backend string) int {
	if !p.hasBalancer() || p.Strategy.AllowFullOutage {
		return 0
	}
	return p.Strategy.MinInService.Of(p.BackendSizes()[backend])
}

// hasBalancer: hosts are drained through a load balancer.
func (p *Plan) hasBalancer() bool { return len(p.LoadBalancer.HAProxy) > 0 }

// Outages lists, for each batch (by index) that takes every server of a
// backend out of rotation at once, those backends. Only a plan with
// strategy.allow_full_outage can have one.
func (p *Plan) Outages() map[int][]string {
	if !p.hasBalancer() {
		return nil
	}
	total := p.BackendSizes()
	out := map[int][]string{}
	for i, batch := range p.Batches() {
		in := map[string]int{}
		for _, h := range batch {
			if b := h.Backend(); b != "" {
				in[b]++
			}
		}
		for _, b := range slices.Sorted(maps.Keys(in)) {
			if in[b] == total[b] {
				out[i] = append(out[i], b)
			}
		}
	}
	return out
}
