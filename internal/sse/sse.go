// Package sse writes deployment events as Server-Sent Events, the one
// format of the API's stream and the dashboard's.
package sse

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/drover-dev/drover/deploy"
)

// Send writes the events with Seq > *last, each as
//
//	id: <seq>
//	event: <kind>
//	data: <the event as JSON>
//
// advancing *last. The id is the same on every node, so a client that
// reconnects anywhere with Last-Event-ID resumes after it. It returns the
// first write error (the client is gone).
func Send(w io.Writer, evs []deploy.Event, last *uint64) error {
	for _, ev := range evs {
		if ev.Seq <= *last {
			continue
		}
		b, err := json.Marshal(ev)
		if err != nil {
			continue
		}
		if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, Field(string(ev.Kind)), b); err != nil {
			return err
		}
		*last = ev.Seq
	}
	return nil
}

// Field keeps a value on one line.
func Field(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
