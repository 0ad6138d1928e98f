package main

import (
	"fmt"
	"time"

	"github.com/drover-dev/drover/deploy"
)

// How the text output writes times and durations, in one place so that
// every command writes them alike (JSON writes RFC 3339 and seconds:
// jsonout.go):
//   - an absolute time is local, with its zone: clock;
//   - a time in a table is relative to now: ago;
//   - a duration is humanDuration, and how long a deployment ran is
//     elapsed, whoever prints it (status, history, the end of a deploy).

// clockLayout is an absolute time in text output: local, with its zone.
const clockLayout = "2006-01-02 15:04:05 MST"

// clock writes t in local time with its zone; "-" for the zero time.
func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(clockLayout)
}

// ago writes t relative to now for a table: "45s ago", "3m ago", "2h ago",
// "5d ago"; "in 3m" for a time to come; "-" for the zero time.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + coarse(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return coarse(d) + " ago"
}

// coarse is d in its largest unit, rounded down: 45s, 3m, 2h, 5d.
func coarse(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// humanDuration writes d for a person: 850ms, 12.3s, 4m05s, 1h02m.
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d.Round(100*time.Millisecond) < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d.Round(time.Second) < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// duration is how long d ran, as every text output writes it.
func duration(d deploy.Deployment) string { return humanDuration(elapsed(d)) }

// elapsed is how long d ran: to its end, or to its last change while it
// runs. The one measure: text (duration) and JSON (duration_seconds) both
// take it.
func elapsed(d deploy.Deployment) time.Duration {
	end := d.Ended
	if end.IsZero() {
		end = d.Updated
	}
	return end.Sub(d.Created)
}
