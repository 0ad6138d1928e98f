// Package duration is a time.Duration that travels as text ("1m30s") in
// JSON, as the API's and the agent protocol's messages carry it.
package duration

import "time"

// Duration is a time.Duration written as its String form.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}
