package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// The embedded coordinator's socket is its owner's only, replaces a stale
// one (left by a killed drover), and leaves no temporary directory.
func TestListenPrivate(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, socketName)
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close() // nothing accepts on it now
	if dialEmbedded(dir) != nil {
		t.Fatal("a stale socket was taken for a running deploy")
	}

	ln, err := listenPrivate(dir, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want the socket only", len(entries))
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	if dialEmbedded(dir) == nil {
		t.Error("the socket does not answer")
	}
}
