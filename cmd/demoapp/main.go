// Command demoapp is the lab's web application, deployed by drover.
//
//	GET /        "<version> <hostname>\n"; ?sleep=200ms delays the answer (max 30s),
//	             to hold requests in flight during a drain
//	GET /health  200 "ok\n"; the broken build answers 500
//	GET /metrics Prometheus metrics: demoapp_http_requests_total{version,
//	             handler,code} and demoapp_http_request_duration_seconds
//	             {version,handler}
//
// The version is --version, or else the VERSION file of the release the
// binary was started from (<release>/bin/demoapp -> <release>/VERSION; the
// executable's real path, so a later switch of `current` does not change it).
// The broken build is a different binary: `go build -ldflags "-X
// main.broken=true"`. Two more builds are bad but healthy, for the metric
// gates: -X main.errorRate=0.05 answers that share of "/" with 500, and
// -X main.slow=150ms answers "/" that much later; /health stays 200. On SIGTERM or SIGINT it stops accepting, lets in-flight
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/drover-dev/drover/internal/atomicfile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Set at link time for the lab's bad builds (see the package comment).
var (
	broken    string // "true": /health answers 500
	errorRate string // a share of "/" answered 500, e.g. "0.05"
	slow      string // a delay before each "/" answer, e.g. "150ms"
)

// faults are the bad build's misbehaviours.
type faults struct {
	broken    bool
	errorRate float64
	slow      time.Duration
}

func linkedFaults() (faults, error) {
	f := faults{broken: broken == "true"}
	if errorRate != "" {
		v, err := strconv.ParseFloat(errorRate, 64)
		if err != nil || v < 0 || v > 1 {
			return f, fmt.Errorf("linked errorRate %q: want a share between 0 and 1", errorRate)
		}
		f.errorRate = v
	}
	if slow != "" {
		d, err := time.ParseDuration(slow)
		if err != nil || d < 0 {
			return f, fmt.Errorf("linked slow %q: want a duration", slow)
		}
		f.slow = d
	}
	return f, nil
}

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
	f, err := linkedFaults()
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(version, host, f, prometheus.NewRegistry()), ReadHeaderTimeout: 5 * time.Second}
	if pidfile != "" {
		if err := writePidfile(pidfile); err != nil {
			ln.Close()
			return err
		}
		defer removePidfile(pidfile)
	}
	log.Printf("version %s on %s, listening on %s (broken=%v error_rate=%g slow=%s)", version, host, ln.Addr(), f.broken, f.errorRate, f.slow)

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

func handler(version, host string, f faults, reg *prometheus.Registry) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "demoapp_http_requests_total", Help: "HTTP requests answered, by version, handler and status code.",
	}, []string{"version", "handler", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "demoapp_http_request_duration_seconds", Help: "Time to answer, by version and handler.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"version", "handler"})
	reg.MustRegister(requests, latency)
	instrument := func(name string, h http.HandlerFunc) http.Handler {
		labels := prometheus.Labels{"version": version, "handler": name}
		return promhttp.InstrumentHandlerDuration(latency.MustCurryWith(labels),
			promhttp.InstrumentHandlerCounter(requests.MustCurryWith(labels), h))
	}
	var n atomic.Uint64
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", instrument("/", func(w http.ResponseWriter, r *http.Request) {
		if s := r.URL.Query().Get("sleep"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 || d > 30*time.Second {
				http.Error(w, "bad sleep", http.StatusBadRequest)
				return
			}
			time.Sleep(d)
		}
		time.Sleep(f.slow)
		// Failures spread evenly: the n-th request fails when the share
		// of n requests reaches one more whole failure.
		if i := n.Add(1); f.errorRate > 0 && uint64(float64(i)*f.errorRate) > uint64(float64(i-1)*f.errorRate) {
			http.Error(w, "failed on purpose ("+version+")", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s %s\n", version, host)
	}))
	mux.Handle("GET /health", instrument("/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if f.broken {
			http.Error(w, "broken build", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
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
	return atomicfile.Write(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

// removePidfile removes the pidfile only while it still names this process.
func removePidfile(path string) {
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(path)
	}
}
