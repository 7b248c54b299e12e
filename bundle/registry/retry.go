package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/ferry-oci/ferry/layout"
)

// MaxAttempts bounds how often one blob transfer is tried. Each request is
// also retried by oras-go's transport where its body can be replayed.
const MaxAttempts = 5

// Permanent is implemented by errors that no retry can mend (the bundle's
// bytes are at fault: another try reads the same).
type Permanent interface {
	error
	Permanent() bool
}

// Transient reports whether err is worth another attempt: a dropped
// connection, a timeout, 408, 429 or a 5xx. Client mistakes (4xx), a
// cancelled context, a blob that fails verification and a Permanent error
// are final.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	for _, final := range []error{layout.ErrDigestMismatch, layout.ErrSizeMismatch, layout.ErrInvalidDigest, layout.ErrUnsafeEntry} {
		if errors.Is(err, final) {
			return false
		}
	}
	var p Permanent
	if errors.As(err, &p) && p.Permanent() {
		return false
	}
	if errors.Is(err, ErrTokenExpired) {
		return true
	}
	var resp *errcode.ErrorResponse
	if errors.As(err, &resp) {
		return resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// WithRetry runs fn until it succeeds, fails for good, or MaxAttempts is
// reached, waiting with exponential backoff (250 ms doubling, at most 4 s)
// between attempts. fn is told the attempt, 0 first.
func WithRetry(ctx context.Context, fn func(attempt int) error) error {
	for attempt := 0; ; attempt++ {
		err := fn(attempt)
		if err == nil || !Transient(err) || attempt+1 >= MaxAttempts {
			return err
		}
		wait := 250 * time.Millisecond << attempt
		if wait > 4*time.Second {
			wait = 4 * time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// resumingReader reads a blob from a registry and, when the connection drops
// in the middle, fetches it again from where it stopped (a range request
// when the registry supports them, otherwise by skipping what was read), so
// a reset costs the rest of the blob, not all of it, and a tarball being
// written need not start over.
type resumingReader struct {
	ctx   context.Context
	open  func() (io.ReadCloser, error)
	rc    io.ReadCloser
	off   int64
	tries int
}

// NewResumingReader opens a blob through open and, when the connection
// drops in the middle, opens it again and goes on from where it stopped.
func NewResumingReader(ctx context.Context, open func() (io.ReadCloser, error)) (io.ReadCloser, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	return &resumingReader{ctx: ctx, open: open, rc: rc}, nil
}

func (r *resumingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.off += int64(n)
	if err == nil || err == io.EOF || !Transient(err) || r.tries+1 >= MaxAttempts || r.ctx.Err() != nil {
		return n, err
	}
	r.tries++
	r.rc.Close()
	if rerr := WithRetry(r.ctx, func(int) error { return r.reopen() }); rerr != nil {
		return n, err
	}
	return n, nil
}

// reopen fetches the blob again and moves to the current offset.
func (r *resumingReader) reopen() error {
	rc, err := r.open()
	if err != nil {
		return err
	}
	if s, ok := rc.(io.Seeker); ok && r.off > 0 {
		if _, err := s.Seek(r.off, io.SeekStart); err != nil {
			rc.Close()
			return err
		}
	} else if _, err := io.CopyN(io.Discard, rc, r.off); err != nil {
		rc.Close()
		return err
	}
	r.rc = rc
	return nil
}

func (r *resumingReader) Close() error { return r.rc.Close() }

// ErrTokenExpired marks an upload refused with 401 after the session was
// opened with the same credentials: the token expired on the way (a large
// blob, short-lived tokens). The next attempt opens a new session, which
// makes oras-go's auth client fetch a fresh token. It is retried once per
// blob, so wrong credentials cannot loop.
var ErrTokenExpired = errors.New("token expired during the upload")

// ExpiredDuringUpload turns a 401 on the first attempt of an upload into
// ErrTokenExpired, but only after the upload session was opened (opened):
// a 401 to opening it is credentials without push rights, final at once.
// Anything else is returned as it is.
func ExpiredDuringUpload(err error, attempt int, opened bool) error {
	if attempt == 0 && opened && Status(err) == http.StatusUnauthorized {
		return fmt.Errorf("%w: %w", ErrTokenExpired, err)
	}
	return err
}
