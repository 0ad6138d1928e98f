package lab

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// The lab's Prometheus scrapes the demo app on every host, labelled by
// host, and sees the error build's failures by version and code.
func TestPrometheusScrapesTheHosts(t *testing.T) {
	requireLab(t)
	if _, err := prometheusBinary(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: %v", err)
		}
		t.Skip(err)
	}
	ctx := context.Background()
	l := up(t, ctx, 2)
	art, err := BuildArtifactOf(ctx, t.TempDir(), "e1", Build{ErrorRate: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	install(t, ctx, l, "web1", "e1", art)
	waitVersion(t, ctx, l, "web1", "e1")
	prom, err := l.StartPrometheus(ctx, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + net.JoinHostPort(l.Hosts[0].Address, strconv.Itoa(l.AppPort)) + "/"
	for range 20 {
		_ = l.Command(ctx, "curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-m", "2", url).Run()
	}
	q := `sum(demoapp_http_requests_total{host="web1",handler="/",code="500",version="e1"})`
	deadline := time.Now().Add(30 * time.Second)
	for {
		raw, err := prom.Query(ctx, l, q)
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err == nil && json.Unmarshal([]byte(raw), &r) == nil && len(r.Data.Result) == 1 && r.Data.Result[0].Value[1] == "10" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus never saw web1's 10 failed requests: %s %v", raw, err)
		}
		select { // the next scrape
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
