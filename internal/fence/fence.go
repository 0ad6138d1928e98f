// Package fence carries leadership fencing through a context: the engine
// of a coordinator puts its check there, and drivers that take several
// steps (a drain that waits and then sets maintenance, an upload that ends
// with a rename) call Check again right before each step that changes
// something, so that a leader deposed halfway stops before the next one.
package fence

import (
	"context"
	"errors"
	"fmt"
)

// ErrFenced means the caller no longer leads: it must stop, not retry.
var ErrFenced = errors.New("fenced: no longer the leader")

// Func confirms that the caller still leads and returns the Raft term.
type Func func(ctx context.Context) (term uint64, err error)

type fenceKey struct{}
type termKey struct{}

// With returns ctx carrying f.
func With(ctx context.Context, f Func) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// Check calls the fence carried by ctx, if any, and returns ctx carrying
// the confirmed term. Without a fence (a one-node CLI) it returns ctx as is.
func Check(ctx context.Context) (context.Context, error) {
	f, _ := ctx.Value(fenceKey{}).(Func)
	if f == nil {
		return ctx, nil
	}
	term, err := f(ctx)
	if err != nil {
		return ctx, fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return context.WithValue(ctx, termKey{}, term), nil
}

// Term returns the last term confirmed on ctx by Check, 0 when none.
func Term(ctx context.Context) uint64 {
	t, _ := ctx.Value(termKey{}).(uint64)
	return t
}
