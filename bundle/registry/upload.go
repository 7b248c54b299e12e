package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// uploadTracker notes where a registry opened an upload session (a POST
// answered 202), so that ferry can cancel a session it will not finish
// rather than leave it behind: when a registry answers a mount with an
// upload (for a blob a delta omits there is nothing to upload), when an
// upload fails and is retried in a new session, and when the run is
// interrupted. (oras-go has no call to cancel an upload, so this is the one
// request of the protocol ferry makes itself: a DELETE on the session URL
// the registry gave.)
type uploadTracker struct {
	next remote.Client
}

type uploadKey struct{}

// uploadSlot receives the Location of an upload a mount request opened.
type uploadSlot struct {
	mu       sync.Mutex
	location *url.URL
}

func (t uploadTracker) Do(req *http.Request) (*http.Response, error) {
	resp, err := t.next.Do(req)
	if err != nil || req.Method != http.MethodPost || resp.StatusCode != http.StatusAccepted {
		return resp, err
	}
	if slot, ok := req.Context().Value(uploadKey{}).(*uploadSlot); ok {
		if loc, lerr := resp.Location(); lerr == nil && loc.Host == req.URL.Host {
			slot.mu.Lock()
			slot.location = loc
			slot.mu.Unlock()
		}
	}
	return resp, err
}

// WithUploadSlot returns a context under which an upload session that a
// request opens (a POST answered 202) is recorded in the returned slot, for
// CancelUpload.
func WithUploadSlot(ctx context.Context) (context.Context, *uploadSlot) {
	slot := &uploadSlot{}
	return context.WithValue(ctx, uploadKey{}, slot), slot
}

// Opened reports whether a request under the slot's context opened an
// upload session.
func (s *uploadSlot) Opened() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.location != nil
}

// ProbeUpload asks repo whether these credentials may push to it, before
// anything is sent: it opens an upload session and cancels it. It returns
// the registry's refusal (a *Error), or nil.
func (c *Client) ProbeUpload(ctx context.Context, repo *Repository) error {
	ref := repo.Reference
	ctx = auth.AppendRepositoryScope(ctx, ref, auth.ActionPull, auth.ActionPush)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Scheme()+"://"+ref.Registry+"/v2/"+ref.Repository+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	resp, err := c.auth.Do(req)
	if err != nil {
		return c.Wrap(OpPushBlob, "(a probe) to "+ref.Repository, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return c.Wrap(OpPushBlob, "(a probe) to "+ref.Repository, &errcode.ErrorResponse{Method: req.Method, URL: req.URL, StatusCode: resp.StatusCode})
	}
	if loc, err := resp.Location(); err == nil {
		slot := &uploadSlot{location: loc}
		c.CancelUpload(ctx, slot)
	}
	return nil
}

// CancelUpload deletes the upload session recorded in slot, if any. It
// runs even when ctx is already cancelled (an interrupted run), for at
// most two seconds. Failure is not an error: registries purge abandoned
// uploads themselves.
func (c *Client) CancelUpload(ctx context.Context, slot *uploadSlot) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	slot.mu.Lock()
	loc := slot.location
	slot.mu.Unlock()
	if loc == nil {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, loc.String(), nil)
	if err != nil {
		return
	}
	resp, err := c.auth.Do(req)
	if err == nil {
		resp.Body.Close()
	}
}

// errNotMounted stands in for the content of a mount that must not fall
// back to an upload.
var errNotMounted = errors.New("registry started an upload instead of mounting")

// TryMount asks the registry to mount desc into repo from the repository
// from, and nothing else: a registry that answers with an upload session
// (202) instead gets that session cancelled, and TryMount reports false. An
// error answer is also "not mounted there"; only a cancelled ctx is an
// error.
func (c *Client) TryMount(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, from string) (bool, error) {
	mctx, slot := WithUploadSlot(ctx)
	err := repo.Mount(mctx, desc, from, func() (io.ReadCloser, error) { return nil, errNotMounted })
	if errors.Is(err, errNotMounted) {
		c.CancelUpload(ctx, slot)
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return err == nil, nil
}

// MountOrUpload makes desc, which repository from holds, appear in repo: by
// a mount, or, where the registry does not mount, by an upload of what
// content returns.
func (c *Client) MountOrUpload(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, from string, content func() (io.ReadCloser, error)) error {
	err := repo.Mount(ctx, desc, from, content)
	return c.Wrap(OpMount, fmt.Sprintf("%s from %s into %s", desc.Digest, from, repo.Reference.Repository), err)
}
