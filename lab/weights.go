package lab

import (
	"context"
	"fmt"
	"strings"
)

// Weight is a server's weight on one HAProxy instance: the current one
// and the one its configuration gives it.
type Weight struct {
	Current, Initial int
}

// Weights reads `get weight` of every server of the lab's backend on every
// HAProxy instance, by instance name then server name.
func (l *Lab) Weights(ctx context.Context) (map[string]map[string]Weight, error) {
	out := map[string]map[string]Weight{}
	for _, inst := range l.HAProxies {
		out[inst.Name] = map[string]Weight{}
		for _, h := range l.Hosts {
			reply, err := l.haproxyAt(ctx, inst.Socket, "get weight "+h.LBServer)
			if err != nil {
				return nil, fmt.Errorf("%s: get weight %s: %w", inst.Name, h.LBServer, err)
			}
			var w Weight
			if _, err := fmt.Sscanf(strings.TrimSpace(reply), "%d (initial %d)", &w.Current, &w.Initial); err != nil {
				return nil, fmt.Errorf("%s: get weight %s: %q: %w", inst.Name, h.LBServer, reply, err)
			}
			_, server, _ := strings.Cut(h.LBServer, "/")
			out[inst.Name][server] = w
		}
	}
	return out, nil
}
