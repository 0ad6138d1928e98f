// Package testhttp sends one raw HTTP request in a test, for the tests that
// check what the API answers to requests its Go client would never make
// (forged headers, missing certificates, replayed keys).
package testhttp

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Do sends method url with body, a bearer token (none when "") and the
// headers hdr through hc, and returns the answer's status and body. A
// request that cannot be sent fails t.
func Do(t testing.TB, hc *http.Client, method, url, token, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}
