package lab

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/atomicfile"
)

// restartScript is bin/restart of every artifact.
//
//go:embed restart.sh
var restartScript []byte

const modulePath = "github.com/drover-dev/drover"

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

// BuildArtifact builds the demo app (CGO_ENABLED=0) and packs a release
// artifact outDir/app-<version>.tar.gz whose root holds bin/demoapp,
// bin/restart and VERSION. A broken artifact's demoapp is a different binary,
// linked with -X main.broken=true: its /health answers 500. The binaries are
// cached in outDir/.build, so further artifacts only pack. The module source
// is found from the working directory (or $DROVER_SRC).
func BuildArtifact(ctx context.Context, outDir, version string, broken bool) (string, error) {
	return BuildArtifactOf(ctx, outDir, version, Build{Broken: broken})
}

// Build is how a lab artifact's demo app misbehaves. The zero Build is a
// good release.
type Build struct {
	Broken    bool          // /health answers 500
	ErrorRate float64       // this share of "/" answers 500; /health stays 200
	Slow      time.Duration // "/" answers this much later; /health stays 200
}

func (b Build) ldflags() string {
	var f []string
	if b.Broken {
		f = append(f, "-X main.broken=true")
	}
	if b.ErrorRate > 0 {
		f = append(f, "-X main.errorRate="+strconv.FormatFloat(b.ErrorRate, 'g', -1, 64))
	}
	if b.Slow > 0 {
		f = append(f, "-X main.slow="+b.Slow.String())
	}
	return strings.Join(f, " ")
}

// BuildArtifactOf is BuildArtifact for any Build.
func BuildArtifactOf(ctx context.Context, outDir, version string, b Build) (string, error) {
	if !versionRE.MatchString(version) {
		return "", fmt.Errorf("lab: version %q: use letters, digits, '.', '_', '+', '-'", version)
	}
	if b.ErrorRate < 0 || b.ErrorRate > 1 || b.Slow < 0 {
		return "", fmt.Errorf("lab: build %+v: the error rate is a share (0 to 1), the delay not negative", b)
	}
	bin, err := buildDemoapp(ctx, outDir, b)
	if err != nil {
		return "", err
	}
	path := filepath.Join(outDir, "app-"+version+".tar.gz")
	if err := packArtifact(path, bin, version); err != nil {
		return "", err
	}
	return path, nil
}

func buildDemoapp(ctx context.Context, outDir string, b Build) (string, error) {
	name := "demoapp"
	switch {
	case b == Build{Broken: true}:
		name = "demoapp-broken"
	case b != Build{}:
		sum := sha256.Sum256([]byte(b.ldflags()))
		name = "demoapp-" + hex.EncodeToString(sum[:6])
	}
	bin := filepath.Join(outDir, ".build", name)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	ldflags := strings.TrimSpace("-s -w " + b.ldflags())
	if err := goBuild(ctx, bin, modulePath+"/cmd/demoapp", ldflags); err != nil {
		return "", err
	}
	return bin, nil
}

// goBuild builds a package of this module into out (atomically).
func goBuild(ctx context.Context, out, pkg, ldflags string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp%d", out, time.Now().UnixNano())
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", tmp, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return os.Rename(tmp, out)
}

// ModuleRoot finds the drover source tree: $DROVER_SRC, else the first
// parent of the working directory whose go.mod declares the module, else the
// tree this package was compiled from.
func ModuleRoot() (string, error) {
	if d := os.Getenv("DROVER_SRC"); d != "" {
		if isModuleRoot(d) {
			return d, nil
		}
		return "", fmt.Errorf("lab: DROVER_SRC=%s holds no %s go.mod", d, modulePath)
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if isModuleRoot(d) {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		if d := filepath.Dir(filepath.Dir(file)); isModuleRoot(d) {
			return d, nil
		}
	}
	return "", errors.New("lab: cannot find the drover source tree (run from inside it or set DROVER_SRC)")
}

func isModuleRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) == 2 && fs[0] == "module" {
			return fs[1] == modulePath
		}
	}
	return false
}

// packArtifact writes the tar.gz (atomically): bin/, bin/demoapp,
// bin/restart, VERSION.
func packArtifact(path, bin, version string) error {
	app, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	now := time.Now().Truncate(time.Second)
	entries := []struct {
		name string
		mode int64
		data []byte
		dir  bool
	}{
		{name: "bin/", mode: 0o755, dir: true},
		{name: "bin/demoapp", mode: 0o755, data: app},
		{name: "bin/restart", mode: 0o755, data: restartScript},
		{name: "VERSION", mode: 0o644, data: []byte(version + "\n")},
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: now, Uname: "root", Gname: "root"}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, buf.Bytes(), 0o644)
}
