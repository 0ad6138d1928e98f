package health

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors WaitHealthy returns, wrapped with the reason; test with errors.Is.
var (
	// ErrDeadline: the threshold of consecutive passes was not reached
	// within Policy.Deadline. The message gives the last failure.
	ErrDeadline = errors.New("not healthy")
	// ErrUnstable: a probe failed during Policy.MinHealthyTime.
	ErrUnstable = errors.New("unstable")
)

// DefaultInterval is the pause between probes when Policy.Interval is zero.
const DefaultInterval = time.Second

// Policy says how a check is repeated.
type Policy struct {
	Interval       time.Duration // pause between the end of a probe and the next; 0 means 1s
	Timeout        time.Duration // bounds each probe; 0: only the deadline and ctx
	Deadline       time.Duration // from the call until Threshold passes; 0: only ctx
	MinHealthyTime time.Duration // after reaching Threshold, keep probing this long; any failure is ErrUnstable
	Threshold      int           // consecutive passes needed; a failure resets the count; < 1 means 1
}

// errWindowEnd cancels a probe still running when the deadline or the
// stability watch ends.
var errWindowEnd = errors.New("health window ended")

// WaitHealthy probes c at once and then every p.Interval until it passes
// p.Threshold times in a row within p.Deadline (measured from the call);
// then it keeps probing for p.MinHealthyTime, where any failure ends it.
//
// It returns nil when the host is healthy and stayed so; an error wrapping
// ErrDeadline with the last failure ("not healthy within 60s: last: GET
// ...: connection refused"); an error wrapping ErrUnstable; or, when ctx
// ends first, an error wrapping ctx's error (context.Canceled, ...). The
// probe failures are quoted as text, not wrapped, so that errors.Is on the
// result sees only these outcomes.
func WaitHealthy(ctx context.Context, c Checker, p Policy) error {
	start := time.Now()
	if p.Interval <= 0 {
		p.Interval = DefaultInterval
	}
	threshold := max(p.Threshold, 1)

	var end time.Time
	var deadline <-chan time.Time
	if p.Deadline > 0 {
		end = start.Add(p.Deadline)
		t := time.NewTimer(p.Deadline)
		defer t.Stop()
		deadline = t.C
	}
	pause := time.NewTimer(p.Interval)
	pause.Stop() // (re)armed by Reset before each wait
	defer pause.Stop()

	passes := 0
	var last error
	notHealthy := func() error {
		if last == nil {
			return fmt.Errorf("%w within %s: %d of %d consecutive passes", ErrDeadline, p.Deadline, passes, threshold)
		}
		return fmt.Errorf("%w within %s: last: %v", ErrDeadline, p.Deadline, last)
	}
	for {
		err, cut := probe(ctx, c, p.Timeout, end)
		if ctx.Err() != nil {
			return stopped(ctx, last)
		}
		switch {
		case err == nil:
			passes++
		case cut:
			if last == nil {
				last = fmt.Errorf("probe still running at the deadline: %v", err)
			}
			return notHealthy()
		default:
			passes, last = 0, err
		}
		if passes >= threshold {
			break
		}
		pause.Reset(p.Interval)
		select {
		case <-ctx.Done():
			return stopped(ctx, last)
		case <-deadline:
			return notHealthy()
		case <-pause.C:
		}
	}

	if p.MinHealthyTime <= 0 {
		return nil
	}
	healthy := time.Now()
	watchEnd := healthy.Add(p.MinHealthyTime)
	watch := time.NewTimer(p.MinHealthyTime)
	defer watch.Stop()
	for {
		pause.Reset(p.Interval)
		select {
		case <-ctx.Done():
			return stopped(ctx, nil)
		case <-watch.C:
			return nil
		case <-pause.C:
		}
		err, cut := probe(ctx, c, p.Timeout, watchEnd)
		switch {
		case ctx.Err() != nil:
			return stopped(ctx, nil)
		case cut:
			return nil // the window closed while this probe ran
		case err != nil:
			return fmt.Errorf("%w: failed %s after becoming healthy (min_healthy_time %s): %v",
				ErrUnstable, time.Since(healthy).Round(time.Millisecond), p.MinHealthyTime, err)
		}
	}
}

// probe runs one check bounded by timeout and by limit (zero: none). cut
// reports that limit, not the target, ended a failed probe.
func probe(ctx context.Context, c Checker, timeout time.Duration, limit time.Time) (err error, cut bool) {
	pctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	if !limit.IsZero() {
		var cancelLimit context.CancelFunc
		pctx, cancelLimit = context.WithDeadlineCause(pctx, limit, errWindowEnd)
		defer cancelLimit()
	}
	err = c.Check(pctx)
	if err == nil || ctx.Err() != nil {
		return err, false
	}
	if errors.Is(context.Cause(pctx), errWindowEnd) {
		return err, true
	}
	// A check run elsewhere (an agent) is handed pctx's deadline and ends
	// it on its own clock, a moment before pctx does here: its "time ran
	// out" is the window closing too when limit is the nearest deadline.
	dl, ok := pctx.Deadline()
	return err, !limit.IsZero() && ok && dl.Equal(limit) && errors.Is(err, context.DeadlineExceeded)
}

// stopped is the error for a wait that ctx ended: it wraps ctx.Err() and,
// if different, its cause.
func stopped(ctx context.Context, last error) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		err = fmt.Errorf("%w: %w", err, cause)
	}
	if last != nil {
		return fmt.Errorf("waiting for healthy: %w (last: %v)", err, last)
	}
	return fmt.Errorf("waiting for healthy: %w", err)
}
