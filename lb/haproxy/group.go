package haproxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Group drives several HAProxy instances that front the same servers, as
// production runs them (a pair behind keepalived, DNS or anycast, each with
// its own runtime API). A server is out of rotation only when every
// instance has taken it out, and back only when every instance sends it
// traffic, so each call acts on all instances at once:
//
//   - Drain returns when the server is drained, at 0 sessions and in MAINT
//     on every instance; an instance that fails fails the call (the others
//     stay drained: the engine's rollback enables the server again).
//   - Enable returns when every instance reports the server UP.
//   - Check verifies that every instance is reachable at level admin and
//     knows the server.
//
// Errors name the instance when there are several.
type Group struct {
	drivers []*Driver
}

// NewGroup returns a group of one driver per config (at least one).
func NewGroup(cfgs ...Config) (*Group, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("haproxy: no instance configured")
	}
	g := &Group{}
	seen := map[string]bool{}
	for i, cfg := range cfgs {
		d, err := New(cfg)
		if err != nil {
			return nil, fmt.Errorf("haproxy instance %d: %w", i+1, err)
		}
		if seen[d.Name()] {
			return nil, fmt.Errorf("haproxy instance %d: %s is listed twice", i+1, d.Name())
		}
		seen[d.Name()] = true
		g.drivers = append(g.drivers, d)
	}
	return g, nil
}

// Drivers returns the group's instances, in configuration order.
func (g *Group) Drivers() []*Driver { return append([]*Driver(nil), g.drivers...) }

// Drain takes server out of rotation on every instance.
func (g *Group) Drain(ctx context.Context, server string) error {
	return g.each(func(_ int, d *Driver) error { return d.Drain(ctx, server) })
}

// Enable puts server back in rotation on every instance.
func (g *Group) Enable(ctx context.Context, server string) error {
	return g.each(func(_ int, d *Driver) error { return d.Enable(ctx, server) })
}

// Check verifies that every instance can drive server.
func (g *Group) Check(ctx context.Context, server string) error {
	return g.each(func(_ int, d *Driver) error { return d.Check(ctx, server) })
}

// SetWeight sets server's weight on every instance.
func (g *Group) SetWeight(ctx context.Context, server string, w int) error {
	return g.each(func(_ int, d *Driver) error { return d.SetWeight(ctx, server, w) })
}

// Weight reads server's current and configured weight from the first
// instance (instances share a configuration; SetWeight keeps them equal).
func (g *Group) Weight(ctx context.Context, server string) (current, initial int, err error) {
	return g.drivers[0].Weight(ctx, server)
}

// InstanceView is one instance's view of a server.
type InstanceView struct {
	Instance string // the runtime API's socket or address
	Server
}

// View reads server's state on every instance, in configuration order.
func (g *Group) View(ctx context.Context, server string) ([]InstanceView, error) {
	out := make([]InstanceView, len(g.drivers))
	err := g.each(func(i int, d *Driver) error {
		s, err := d.View(ctx, server)
		out[i] = InstanceView{Instance: d.Name(), Server: s}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Backend reads every server of backend on every instance: the servers of
// the first instance, then those of the second, and so on.
func (g *Group) Backend(ctx context.Context, backend string) ([]InstanceView, error) {
	per := make([][]InstanceView, len(g.drivers))
	err := g.each(func(i int, d *Driver) error {
		all, err := d.Servers(ctx)
		if err != nil {
			return err
		}
		for _, s := range all {
			if s.Backend == backend {
				per[i] = append(per[i], InstanceView{Instance: d.Name(), Server: s})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []InstanceView
	for _, vs := range per {
		out = append(out, vs...)
	}
	return out, nil
}

// each runs fn on every instance at once and joins the failures, each
// naming its instance when there are several.
func (g *Group) each(fn func(int, *Driver) error) error {
	if len(g.drivers) == 1 {
		return fn(0, g.drivers[0])
	}
	errs := make([]error, len(g.drivers))
	var wg sync.WaitGroup
	for i, d := range g.drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(i, d); err != nil {
				errs[i] = fmt.Errorf("haproxy %s: %w", d.Name(), err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
