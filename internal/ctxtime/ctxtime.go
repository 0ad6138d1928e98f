// Package ctxtime waits for a while unless a context ends first.
package ctxtime

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends: then it returns ctx.Err() at once.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
