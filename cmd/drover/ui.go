package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/raftstore"
	"github.com/drover-dev/drover/ui"
	"github.com/spf13/cobra"
)

// defaultUIAddr is where `drover ui` listens unless told otherwise.
const defaultUIAddr = "127.0.0.1:7480"

func newUICmd(g *globalFlags) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Serve the web dashboard of the embedded coordinator's data dir",
		Long: `Serve the web dashboard (deployments, live progress, history, hosts) for the
embedded coordinator's data dir, on a loopback address, until Ctrl-C. It prints
a link that signs the browser in with a token made for this run only.

A deploy running on the same data dir holds it: watch that one live with
'drover deploy PLAN --ui 127.0.0.1:7480' instead.

In a cluster (--server or DROVER_ADDR), every coordinator serves the dashboard
at https://ADDRESS/ui/: sign in there with a read token
('drover token create NAME --role read'). See docs/dashboard.md.`,
		Example: `  drover ui
  drover ui --listen 127.0.0.1:9000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(orBackground(cmd.Context()), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if handled, err := withCluster(ctx, &g.cluster, func(ctx context.Context, cl *api.Client) error {
				addrs, _ := g.cluster.addrs()
				fmt.Println("Every coordinator serves the dashboard; sign in with a read token ('drover token create NAME --role read'):")
				for _, a := range addrs {
					fmt.Printf("  https://%s%s\n", a, ui.Prefix)
				}
				return nil
			}); handled {
				return err
			}
			if err := checkLoopback(listen); err != nil {
				return withCode(exitUsage, err)
			}
			st, err := openLocal(ctx, g, fmt.Sprintf("a deploy, or another 'drover ui'; watch a deploy with 'drover deploy PLAN --ui %s'", listen))
			if err != nil {
				return err
			}
			defer st.Close()
			done, err := serveDashboard(ctx, st, listen, os.Stdout)
			if err != nil {
				return withCode(exitUsage, err)
			}
			<-ctx.Done()
			done()
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", defaultUIAddr, "loopback address and port to serve on (plain HTTP, so loopback only)")
	return cmd
}

func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// checkLoopback refuses an address the local dashboard must not listen on:
// it is plain HTTP, and its link carries a token.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port, like %s", addr, defaultUIAddr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q: the local dashboard is plain HTTP, so it listens on a loopback address only (127.0.0.1, ::1); a cluster's coordinators serve it over TLS", addr)
	}
	return nil
}

// serveDashboard serves the dashboard of a local store on addr, a loopback
// address: plain HTTP, signed in with a token made for this run, printed to
// out as a link (the token in the URL's fragment, which the page trades
// for a cookie and removes). stop shuts the server down.
func serveDashboard(ctx context.Context, st *raftstore.Store, addr string, out io.Writer) (stop func(), err error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		ln.Close()
		return nil, err
	}
	token := hex.EncodeToString(b)
	dash := ui.New(ui.Config{
		Source: st,
		Authenticate: func(t string) bool {
			return subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1
		},
		Lists: map[string]func(context.Context) (any, error){
			"node": func(context.Context) (any, error) {
				return api.NodeStatus{ID: "local", State: "Leader", Version: build().Version}, nil
			},
			"members": func(context.Context) (any, error) { return []api.Member{}, nil },
			"agents":  func(context.Context) (any, error) { return []api.AgentInfo{}, nil },
		},
	})
	mux := http.NewServeMux()
	mux.Handle(ui.Prefix, dash)
	mux.Handle("GET /{$}", ui.Redirect())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	url := "http://" + ln.Addr().String() + ui.Prefix + "#token=" + token
	fmt.Fprintf(out, "dashboard: %s (Ctrl-C stops it)\n", url)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = srv.Close()
	}, nil
}
