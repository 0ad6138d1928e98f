// Command demoapp is the lab's web application, deployed by drover.
//
//	GET /        "<version> <hostname>\n"; ?sleep=200ms delays the answer (max 30s),
//	             to hold requests in flight during a drain
//	GET /health  200 "ok\n"; the broken build answers 500
//
// The version is --version, or else the VERSION file of the release the
// binary was started from (<release>/bin/demoapp -> <release>/VERSION; the
// executable's real path, so a later switch of `current` does not change it).
// The broken build is a different binary: `go build -ldflags "-X
// main.broken=true"`. On SIGTERM or SIGINT it stops accepting, lets in-flight
// requests finish (up to --shutdown-timeout) and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// broken is set to "true" at link time for the broken build.
var broken string

func main() {
	listen := flag.String("listen", ":8080", "address to listen on")
	pidfile := flag.String("pidfile", "", "write the PID here once listening; removed at exit")
	version := flag.String("version", "", "version to report (default: the release's VERSION file)")
	grace := flag.Duration("shutdown-timeout", 10*time.Second, "how long in-flight requests may take after SIGTERM")
	flag.Parse()
	log.SetPrefix(fmt.Sprintf("demoapp[%d] ", os.Getpid()))
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	if err := run(*listen, *pidfile, *version, *grace); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func run(listen, pidfile, version string, grace time.Duration) error {
	if version == "" {
		v, err := releaseVersion()
		if err != nil {
			return err
		}
		version = v
	}
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	isBroken := broken == "true"

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(version, host, isBroken), ReadHeaderTimeout: 5 * time.Second}
	if pidfile != "" {
		if err := writePidfile(pidfile); err != nil {
			ln.Close()
			return err
		}
		defer removePidfile(pidfile)
	}
	log.Printf("version %s on %s, listening on %s (broken=%v)", version, host, ln.Addr(), isBroken)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Printf("signal received, shutting down (grace %v)", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Print("stopped")
	return nil
}

func handler(version, host string, isBroken bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if s := r.URL.Query().Get("sleep"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 || d > 30*time.Second {
				http.Error(w, "bad sleep", http.StatusBadRequest)
				return
			}
			time.Sleep(d)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s %s\n", version, host)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if isBroken {
			http.Error(w, "broken build", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// releaseVersion reads VERSION next to the release's bin directory.
func releaseVersion() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	path := filepath.Join(filepath.Dir(filepath.Dir(exe)), "VERSION")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no --version and %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}

func writePidfile(path string) error {
	tmp := path + "." + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// removePidfile removes the pidfile only while it still names this process.
func removePidfile(path string) {
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(path)
	}
}
