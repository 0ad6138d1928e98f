package plans

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// AllowedFiles is the set of files on a coordinator that a plan submitted
// to a cluster may name (inventory, ssh.identity_file, ssh.known_hosts,
// load_balancer.haproxy.socket). The plan's author is an API client, not
// the coordinator's operator: without this rule a plan could read any file
// the server can (its bootstrap token, its CA key), probe which paths exist,
// or make accept-new append to any file. The operator lists what plans may
// use with `drover server --plan-files PATH` (a file, or a directory and
// everything below it); the zero value allows nothing.
type AllowedFiles struct {
	Paths []string // absolute, cleaned: files, or directories for all below them
}

// ErrFileNotAllowed is the one answer for a coordinator file a plan may not
// use, whether it exists or not, so that a plan cannot probe the server's
// disk.
var ErrFileNotAllowed = errors.New("is not a file that plans may name on this cluster (missing, or outside the server's --plan-files)")

// check decides whether a plan may name p (absolute). The path is checked
// as written and again with its symlinks resolved, so that a link inside an
// allowed directory cannot lead out of it. A missing file inside an allowed
// directory is reported as missing: the operator allowed that directory to
// be seen.
func (a *AllowedFiles) check(p string) error {
	if !a.covers(p) {
		return ErrFileNotAllowed
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if _, lerr := os.Lstat(p); errors.Is(lerr, fs.ErrNotExist) {
			return nil // the caller reports the missing file itself
		}
		return ErrFileNotAllowed
	}
	if !a.covers(real) {
		return ErrFileNotAllowed
	}
	return nil
}

// covers reports whether p is one of the allowed paths or below one, both
// as given and with the allowed paths' own symlinks resolved (so that
// --plan-files /etc/drover works when /etc is a link).
func (a *AllowedFiles) covers(p string) bool {
	for _, allowed := range a.Paths {
		if within(p, allowed) {
			return true
		}
		if r, err := filepath.EvalSymlinks(allowed); err == nil && within(p, r) {
			return true
		}
	}
	return false
}

func within(p, dir string) bool {
	p, dir = filepath.Clean(p), filepath.Clean(dir)
	if p == dir {
		return true
	}
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(p, dir)
}
