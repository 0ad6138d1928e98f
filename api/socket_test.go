package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
)

// An embedded coordinator serves the API on a unix socket with Local: a
// client with ClientConfig.Socket reads and writes without a certificate
// or a token (the socket's permissions stand for them). The same handler
// without Local refuses a caller that shows no certificate.
func TestSocket(t *testing.T) {
	for _, tc := range []struct {
		name  string
		local bool
		want  error
	}{
		{"local", true, nil},
		{"not local: a certificate is required", false, ErrCertificateRequired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore()
			st.addDeployment("d1")
			n := &fakeNode{st: st, id: "n1", leader: true}
			sock := filepath.Join(t.TempDir(), "drover.sock")
			ln, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: NewServer(Config{Node: n, Cluster: n, Deployments: n, Artifacts: n, Auth: n, NodeID: "n1",
				Local: tc.local, Log: slog.New(slog.DiscardHandler)})}
			go srv.Serve(ln)
			defer srv.Close()

			cl, err := NewClient(ClientConfig{Socket: sock})
			if err != nil {
				t.Fatal(err)
			}
			d, err := cl.Deployment(context.Background(), "d1")
			if !errors.Is(err, tc.want) || (tc.want == nil && d.ID != "d1") {
				t.Fatalf("Deployment: %+v, %v; want %v", d, err, tc.want)
			}
			err = cl.Act(context.Background(), "d1", ActionPause)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Act: %v, want %v", err, tc.want)
			}
			if got := st.writeCount(); (got == 1) != tc.local {
				t.Errorf("%d writes", got)
			}
		})
	}
}
