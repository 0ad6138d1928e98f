package orchestrator

import (
	"fmt"
	"path"
	"strings"

	"github.com/drover-dev/drover/internal/shell"
)

// The shell scripts the pipeline runs on a host, every stage's in one place
// (drain, enable and verify talk to the balancer or the app instead). Each
// is a pure function of the values it is given, quoted with internal/shell;
// the stages in pipeline.go and hosts.go say when each runs.

// preflightScript checks that the host has the tools the pipeline uses and
// prints the release `current` points at (current=), the free space in
// KiB where releases go (free=) and each complete release the host keeps
// (release=, a line each), for the release path base.
func preflightScript(base string) string {
	return fmt.Sprintf(`for t in tar sha256sum mv ln; do command -v $t >/dev/null || { echo "missing command: $t"; exit 1; }; done
echo "current=$(readlink %s 2>/dev/null)"
d=%s; while [ ! -d "$d" ]; do d=$(dirname "$d"); done
echo "free=$(df -Pk "$d" | awk 'NR==2 {print $4}')"
cd %s 2>/dev/null && for r in */; do [ -f "$r.drover-release" ] && echo "release=${r%%/}"; done; true`, shell.Quote(path.Join(base, "current")), shell.Quote(base), shell.Quote(path.Join(base, "releases")))
}

// releasePresentScript prints present when a release's marker file exists,
// else absent.
func releasePresentScript(marker string) string {
	return fmt.Sprintf("test -f %s && echo present || echo absent", shell.Quote(marker))
}

// unpackScript checks the uploaded archive at staging against its digest,
// unpacks it into tmp (dropping strip leading path elements), writes the
// marker, moves tmp to dir and removes the upload.
func unpackScript(sha256, staging, tmp, dir string, strip int) string {
	return strings.Join([]string{
		"set -e",
		fmt.Sprintf("echo %s | sha256sum -c --quiet -", shell.Quote(sha256+"  "+staging)),
		fmt.Sprintf("rm -rf %s && mkdir -p %s", shell.Quote(tmp), shell.Quote(tmp)),
		fmt.Sprintf("tar -xf %s -C %s --strip-components=%d --no-same-owner --no-same-permissions", shell.Quote(staging), shell.Quote(tmp), strip),
		fmt.Sprintf("echo %s > %s/.drover-release", shell.Quote(sha256), shell.Quote(tmp)),
		fmt.Sprintf("rm -rf %s && mv %s %s", shell.Quote(dir), shell.Quote(tmp), shell.Quote(dir)),
		fmt.Sprintf("rm -f %s", shell.Quote(staging)),
	}, "\n")
}

// activateScript points the link `current` at releases/target through tmp
// (an atomic rename), then runs the plan's restart command from it.
func activateScript(target, tmp, link, restart string) string {
	return fmt.Sprintf("set -e\nln -sfn %s %s\nmv -Tf %s %s\ncd %s\n%s",
		shell.Quote(path.Join("releases", target)), shell.Quote(tmp), shell.Quote(tmp), shell.Quote(link), shell.Quote(link), restart)
}

// hookScript runs a plan's hook cmd from releaseDir (or the release path
// base, or /) with DROVER_HOST, DROVER_VERSION, DROVER_PHASE and
// DROVER_RELEASE_DIR set.
func hookScript(releaseDir, base, host, version, phase, cmd string) string {
	return fmt.Sprintf("cd %s 2>/dev/null || cd %s 2>/dev/null || cd /; DROVER_HOST=%s DROVER_VERSION=%s DROVER_PHASE=%s DROVER_RELEASE_DIR=%s; export DROVER_HOST DROVER_VERSION DROVER_PHASE DROVER_RELEASE_DIR; %s",
		shell.Quote(releaseDir), shell.Quote(base), shell.Quote(host), shell.Quote(version), shell.Quote(phase), shell.Quote(releaseDir), cmd)
}

// pruneScript removes from the folder releases all but the keep newest
// releases, never current nor previous ("-" for none).
func pruneScript(releases, current, previous string, keep int) string {
	return fmt.Sprintf(`cd %s 2>/dev/null || exit 0
n=0
for rel in $(ls -1t); do
  n=$((n+1))
  case "$rel" in %s|%s) continue;; esac
  [ "$n" -gt %d ] && rm -rf -- "$rel"
done
exit 0`, shell.Quote(releases), shell.Quote(current), shell.Quote(previous), keep)
}
