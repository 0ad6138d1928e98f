// Package atomicfile replaces a file's contents all at once: after a crash
// the file holds the old content or the new, never a mix or nothing.
package atomicfile

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write writes data to path with exactly mode (see WriteFunc).
func Write(path string, data []byte, mode fs.FileMode) error {
	return WriteFunc(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc fills a temp file beside path through fill, sets exactly mode
// (the umask may have narrowed it, and the temp file is created 0600, so a
// secret is never readable by others even for a moment), fsyncs it, renames
// it over path and fsyncs the folder. When fill or any step fails, the temp
// file is removed, path is untouched and the error is returned as it is:
// the caller says what was being written.
func WriteFunc(path string, mode fs.FileMode, fill func(w io.Writer) error) error {
	return write(path, mode, fill, os.Rename)
}

// Create is Write that never replaces: when path exists (even when another
// writer created it a moment ago) it fails with an error that is
// fs.ErrExist, and path keeps what it held. The new file appears whole,
// by a hard link from the temp file.
func Create(path string, data []byte, mode fs.FileMode) error {
	return write(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, func(tmp, path string) error {
		if err := os.Link(tmp, path); err != nil {
			return err
		}
		return os.Remove(tmp)
	})
}

func write(path string, mode fs.FileMode, fill func(w io.Writer) error, place func(tmp, path string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	err = fill(f)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := place(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes a rename or a new file in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
