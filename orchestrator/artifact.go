package orchestrator

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
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

// InspectArtifact checksums the archive and walks it once, so that a corrupt
// archive is refused before any host is touched.
func InspectArtifact(path string) (Artifact, error) {
	f, err := os.Open(path)
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
			return Artifact{}, fmt.Errorf("%s: %w: %v", path, ErrBadArtifact, err)
		}
		r = gz
	}
	a := Artifact{Path: path}
	tr := tar.NewReader(r)
	entries := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Artifact{}, fmt.Errorf("%s: %w: %v", path, ErrBadArtifact, err)
		}
		entries++
		a.Unpacked += hdr.Size
	}
	if entries == 0 {
		return Artifact{}, fmt.Errorf("%s: %w: it is empty", path, ErrBadArtifact)
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
