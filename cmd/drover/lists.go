package main

import (
	"fmt"
	"io"
	"time"

	"github.com/drover-dev/drover/api"
)

// printHosts is the text of `drover hosts`: times relative to now.
func printHosts(w io.Writer, hs []api.AgentInfo, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tADDRESS\tVERSION\tLAST HEARTBEAT\tSTATE")
	for _, h := range hs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, orNone(h.Address), orNone(h.Version), ago(h.LastHeartbeat, now), h.State)
	}
	return tw.Flush()
}

// printTokens is the text of `drover token list`: times relative to now
// ("in 3h" for an expiry to come).
func printTokens(w io.Writer, ts []api.TokenInfo, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tEXPIRES")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Role, ago(t.Created, now), ago(t.Expires, now))
	}
	return tw.Flush()
}
