package orchestrator

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	// The inspection is on the path to the first batch (the deployment
	// records the checksum) and its gunzip is most of it: klauspost's
	// inflate is about 1.8 times as fast as compress/gzip's on a release.
	"github.com/klauspost/compress/gzip"
)

// Artifact is a release archive as the engine uploads it.
type Artifact struct {
	Path     string
	SHA256   string
	Size     int64 // bytes on disk
	Unpacked int64 // bytes of the files inside: with Size, the disk a host needs
}

// ErrBadArtifact means the release archive is not a readable tar (optionally gzipped).
var ErrBadArtifact = errors.New("artifact is not a readable tar or tar.gz archive")

// ErrUnsafeArtifact means the archive holds an entry that unpacking as root
// on a host must not create (see checkEntry).
var ErrUnsafeArtifact = errors.New("artifact holds an entry drover will not unpack")

// markerName is the file install writes into a complete release.
const markerName = ".drover-release"

// InspectArtifact checksums the archive and walks it once, so that a corrupt
// or unsafe archive is refused before any host is touched. strip is the
// plan's release.strip_components: entries are judged where they land.
func InspectArtifact(file string, strip int) (Artifact, error) {
	f, err := os.Open(file)
	if err != nil {
		return Artifact{}, fmt.Errorf("open artifact: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	br := bufio.NewReader(io.TeeReader(f, h))
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return Artifact{}, fmt.Errorf("%s: %w: %v", file, ErrBadArtifact, err)
		}
		r = gz
	}
	a := Artifact{Path: file}
	tr := tar.NewReader(r)
	entries := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Artifact{}, fmt.Errorf("%s: %w: %v", file, ErrBadArtifact, err)
		}
		if err := checkEntry(hdr, strip); err != nil {
			return Artifact{}, fmt.Errorf("%s: %w", file, err)
		}
		entries++
		a.Unpacked += hdr.Size
	}
	if entries == 0 {
		return Artifact{}, fmt.Errorf("%s: %w: it is empty", file, ErrBadArtifact)
	}
	// Hash whatever trails the archive too: the checksum covers the file.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return Artifact{}, fmt.Errorf("read artifact: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return Artifact{}, fmt.Errorf("stat artifact: %w", err)
	}
	a.Size = st.Size()
	a.SHA256 = hex.EncodeToString(h.Sum(nil))
	return a, nil
}

// checkEntry is the rule for what a release may contain, since the unpack
// runs as root on every host: regular files, directories, and symbolic
// links whose target stays inside the release; no name with .. or a
// leading /; no file named like the release marker (a link there would
// make install write through it); no devices, fifos or hard links; no
// setuid or setgid bits. The entry is judged after strip leading
// components, as tar --strip-components places it.
func checkEntry(hdr *tar.Header, strip int) error {
	name := hdr.Name
	bad := func(why string) error { return fmt.Errorf("%w: %q %s", ErrUnsafeArtifact, name, why) }
	if strings.HasPrefix(name, "/") {
		return bad("has an absolute name")
	}
	parts := strings.Split(strings.TrimSuffix(name, "/"), "/")
	for _, p := range parts {
		if p == ".." {
			return bad("has a .. element")
		}
		if p == markerName {
			return bad("is named like drover's release marker " + markerName)
		}
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil // metadata only (git archive writes one); nothing is created
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeSymlink:
		if path.IsAbs(hdr.Linkname) {
			return bad("is a symbolic link to an absolute path " + hdr.Linkname)
		}
		// Where the link lands, relative to the release root.
		landed := parts
		if len(landed) <= strip {
			return nil // tar drops it
		}
		landed = landed[strip:]
		to := path.Join(path.Join(landed[:len(landed)-1]...), hdr.Linkname)
		if to == ".." || strings.HasPrefix(to, "../") {
			return bad("is a symbolic link out of the release (to " + hdr.Linkname + ")")
		}
		if path.Base(to) == markerName {
			return bad("is a symbolic link to the release marker " + markerName)
		}
	case tar.TypeLink:
		return bad("is a hard link")
	case tar.TypeChar, tar.TypeBlock:
		return bad("is a device node")
	case tar.TypeFifo:
		return bad("is a fifo")
	default:
		return bad(fmt.Sprintf("has an unsupported type %q", hdr.Typeflag))
	}
	if hdr.Mode&(04000|02000) != 0 {
		return bad(fmt.Sprintf("has the setuid or setgid bit (mode %o)", hdr.Mode))
	}
	return nil
}
