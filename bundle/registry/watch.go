package registry

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTimeout is how long one request waits for a registry's answer
// (its response headers) when Options.Timeout is zero: a LAN registry
// answers in milliseconds, a busy one in seconds; a minute of silence is a
// stall. Large uploads are not bounded by it: the clock starts when the
// request has been sent.
const DefaultTimeout = time.Minute

// watch wraps the transport below retries: it bounds how long each request
// waits for an answer, reports requests that wait (so a stall shows on the
// progress line), names the host, the request and the wait in the error of
// one that got no answer, and, with Debug, logs every request.
type watch struct {
	next    http.RoundTripper
	timeout time.Duration
	logf    func(string, ...any)
	debug   bool
}

// stallAfter is how long a request waits before it is reported, and how
// often after that: a tenth of the timeout, at least a second.
func (w watch) stallAfter() time.Duration { return max(w.timeout/10, time.Second) }

func (w watch) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	var answered atomic.Bool
	var mu sync.Mutex
	var timer *time.Timer
	report := func() {
		if answered.Load() {
			return
		}
		w.logf("waiting for %s: %s %s, %s so far", req.URL.Host, req.Method, Redact(req.URL), time.Since(start).Round(time.Second))
		mu.Lock()
		timer.Reset(w.stallAfter())
		mu.Unlock()
	}
	mu.Lock()
	timer = time.AfterFunc(w.stallAfter(), report)
	mu.Unlock()
	resp, err := w.next.RoundTrip(req)
	answered.Store(true)
	mu.Lock()
	timer.Stop()
	mu.Unlock()
	took := time.Since(start)
	if w.debug {
		status := "no answer"
		if resp != nil {
			status = resp.Status
		} else if err != nil {
			status = "error: " + err.Error()
		}
		w.logf("debug: %s %s → %s (%s)", req.Method, Redact(req.URL), status, took.Round(time.Millisecond))
	}
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		err = &StallError{Host: req.URL.Host, Request: req.Method + " " + Redact(req.URL), Waited: took, Err: err}
	}
	return resp, err
}

// StallError is a request that got no answer in time.
type StallError struct {
	Host, Request string
	Waited        time.Duration
	Err           error
}

func (e *StallError) Error() string {
	return fmt.Sprintf("%s did not answer %s in %s (the limit is --timeout): %v", e.Host, e.Request, e.Waited.Round(100*time.Millisecond), e.Err)
}

func (e *StallError) Unwrap() error { return e.Err }

// Timeout reports false, so that nothing retries a stall: a registry that
// gave no answer in the limit is not asked the same again and again (5
// attempts of 5 minutes each, silently, were minutes per request); the
// error says what waited and for how long.
func (e *StallError) Timeout() bool { return false }

// Temporary is there for net.Error.
func (e *StallError) Temporary() bool { return false }

// Redact is a URL fit for a log: no user or password, and the values of
// query parameters that may carry a secret (tokens, signatures, upload
// state) replaced.
func Redact(u *url.URL) string {
	c := *u
	c.User = nil
	q := c.Query()
	for k := range q {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "token") || strings.Contains(lk, "sig") || strings.Contains(lk, "state") || strings.Contains(lk, "secret") || strings.Contains(lk, "password") {
			q.Set(k, "REDACTED")
		}
	}
	c.RawQuery = q.Encode()
	return c.String()
}
