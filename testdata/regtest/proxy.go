package regtest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// Fault decides, per request, whether to answer it instead of the registry.
// It returns true when it has written a response.
type Fault func(w http.ResponseWriter, r *http.Request) bool

// NewProxy puts a reverse proxy on 127.0.0.1 in front of a real registry
// server, so a test can inject faults the registry itself would not produce
// (Harbor's refusals, network errors). It returns the proxy's host:port and
// stops with the test.
func NewProxy(t testing.TB, s *Server, fault Fault) string {
	t.Helper()
	target, _ := url.Parse("http://" + s.Host)
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fault != nil && fault(w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
