package bundle

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

// maxAttempts bounds how often one blob transfer is tried. Each request is
// also retried by oras-go's transport where its body can be replayed.
const maxAttempts = 5

// transient reports whether err is worth another attempt: a dropped
// connection, a timeout, 408, 429 or a 5xx. Client mistakes (4xx), a
// cancelled context and a blob that fails verification are final.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	for _, final := range []error{layout.ErrDigestMismatch, layout.ErrSizeMismatch, layout.ErrInvalidDigest, layout.ErrUnsafeEntry} {
		if errors.Is(err, final) {
			return false
		}
	}
	var be *bundleErr
	if errors.As(err, &be) {
		return false // the bundle's bytes are at fault: another try reads the same
	}
	if errors.Is(err, errTokenExpired) {
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

// withRetry runs fn until it succeeds, fails for good, or maxAttempts is
// reached, waiting with exponential backoff (250 ms doubling, at most 4 s)
// between attempts.
func withRetry(ctx context.Context, fn func(attempt int) error) error {
	for attempt := 0; ; attempt++ {
		err := fn(attempt)
		if err == nil || !transient(err) || attempt+1 >= maxAttempts {
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

func newResumingReader(ctx context.Context, open func() (io.ReadCloser, error)) (*resumingReader, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	return &resumingReader{ctx: ctx, open: open, rc: rc}, nil
}

func (r *resumingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.off += int64(n)
	if err == nil || err == io.EOF || !transient(err) || r.tries+1 >= maxAttempts || r.ctx.Err() != nil {
		return n, err
	}
	r.tries++
	r.rc.Close()
	if rerr := withRetry(r.ctx, func(int) error { return r.reopen() }); rerr != nil {
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

// errTokenExpired marks an upload refused with 401 after the session was
// opened with the same credentials: the token expired on the way (a large
// blob, short-lived tokens). The next attempt opens a new session, which
// makes oras-go's auth client fetch a fresh token. It is retried once per
// blob, so wrong credentials cannot loop.
var errTokenExpired = errors.New("token expired during the upload")

// expiredDuringUpload turns a 401 on the first attempt of an upload into
// errTokenExpired; anything else is returned as it is.
func expiredDuringUpload(err error, attempt int) error {
	var resp *errcode.ErrorResponse
	if attempt == 0 && errors.As(err, &resp) && resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%w: %w", errTokenExpired, err)
	}
	return err
}
