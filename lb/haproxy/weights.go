package haproxy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/internal/fence"
)

// MaxWeight is the largest server weight HAProxy accepts.
const MaxWeight = 256

// ErrNoCanaryShare means the share asked for a canary cannot be given
// with HAProxy's integer weights (0 to 256).
var ErrNoCanaryShare = errors.New("no canary weights give that share")

// Weight reads server's ("backend/server") weight on this instance: the
// current one and the one it was configured with.
func (d *Driver) Weight(ctx context.Context, server string) (current, initial int, err error) {
	backend, name, err := splitServer(server)
	if err != nil {
		return 0, 0, fmt.Errorf("weight of %s: %w", server, err)
	}
	reply, err := d.command(ctx, fmt.Sprintf("get weight %s/%s", backend, name))
	if err != nil {
		return 0, 0, fmt.Errorf("weight of %s: %w", server, err)
	}
	// "1 (initial 1)"
	text := strings.TrimSpace(reply)
	cur, rest, ok := strings.Cut(text, " (initial ")
	if ok {
		rest, ok = strings.CutSuffix(rest, ")")
	}
	if !ok {
		if err := replyError(reply); err != nil {
			return 0, 0, fmt.Errorf("weight of %s: %w", server, nameServer(err, backend, name))
		}
		return 0, 0, fmt.Errorf("weight of %s: %w: %q", server, ErrUnexpectedReply, text)
	}
	if current, err = strconv.Atoi(cur); err == nil {
		initial, err = strconv.Atoi(rest)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("weight of %s: %w: %q", server, ErrUnexpectedReply, text)
	}
	return current, initial, nil
}

// SetWeight sets server's weight on this instance (0 to MaxWeight).
func (d *Driver) SetWeight(ctx context.Context, server string, w int) error {
	backend, name, err := splitServer(server)
	if err != nil {
		return fmt.Errorf("set weight of %s: %w", server, err)
	}
	if w < 0 || w > MaxWeight {
		return fmt.Errorf("set weight of %s: %d is outside 0-%d", server, w, MaxWeight)
	}
	ctx, err = fence.Check(ctx)
	if err != nil {
		return err
	}
	reply, err := d.command(ctx, fmt.Sprintf("set server %s/%s weight %d", backend, name, w))
	if err != nil {
		return fmt.Errorf("set weight of %s: %w", server, err)
	}
	if err := replyError(reply); err != nil {
		return fmt.Errorf("set weight of %s: %w", server, nameServer(err, backend, name))
	}
	return nil
}

// CanaryWeights returns the weights that give the canary servers together
// the share (0 < share < 1) of the traffic of a backend whose servers have
// the weights in current (servers at 0 take no traffic and stay at 0).
// Every server's weight may change: when the canary's would round to
// nothing, the others are scaled up, within MaxWeight, so that the share
// is met within half a point where HAProxy's integer weights allow it.
// The caller records the current weights first and restores them after.
func CanaryWeights(current map[string]int, canary []string, share float64) (map[string]int, error) {
	if !(share > 0 && share < 1) {
		return nil, fmt.Errorf("canary share %g: want between 0 and 1", share)
	}
	if len(canary) == 0 {
		return nil, errors.New("canary weights: no canary server")
	}
	var others []string
	for s, w := range current {
		if w > 0 && !slices.Contains(canary, s) {
			others = append(others, s)
		}
	}
	for _, c := range canary {
		if _, ok := current[c]; !ok {
			return nil, fmt.Errorf("canary weights: %s is not a server of the backend", c)
		}
	}
	if len(others) == 0 {
		return nil, fmt.Errorf("canary weights: no other server takes traffic: %w", ErrNoCanaryShare)
	}
	slices.Sort(others)
	// Keep the others' proportions and find the smallest scale at which
	// the canary's weight gives the share closely enough.
	maxOther := 0
	for _, s := range others {
		maxOther = max(maxOther, current[s])
	}
	k := float64(len(canary))
	var best map[string]int
	bestErr := math.Inf(1)
	for scale := 1; maxOther*scale <= MaxWeight; scale++ {
		sum := 0
		for _, s := range others {
			sum += current[s] * scale
		}
		c := int(math.Round(share * float64(sum) / (k * (1 - share))))
		if c > MaxWeight {
			break // larger scales only need more
		}
		if c < 1 {
			continue
		}
		if e := math.Abs(k*float64(c)/(k*float64(c)+float64(sum)) - share); e < bestErr {
			best, bestErr = map[string]int{}, e
			for s, w := range current {
				best[s] = w * scale // servers at 0 stay at 0
			}
			for _, s := range canary {
				best[s] = c
			}
		}
		if bestErr <= 0.005 {
			break
		}
	}
	if best == nil || bestErr > 0.02 {
		return nil, fmt.Errorf("canary share %.3g%% for %d of %d servers: %w", share*100, len(canary), len(canary)+len(others), ErrNoCanaryShare)
	}
	return best, nil
}
