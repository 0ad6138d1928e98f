//go:build !unix

package ssh

import "os"

// lockFile is a no-op where flock is unavailable; the Dialer's mutex still
// serialises appends within the process.
func lockFile(*os.File) (unlock func(), err error) { return func() {}, nil }
