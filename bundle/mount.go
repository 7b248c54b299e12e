package bundle

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"

	"oras.land/oras-go/v2/registry/remote"
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

// withUploadSlot returns a context under which a mount's upload session
// is recorded in the returned slot.
func withUploadSlot(ctx context.Context) (context.Context, *uploadSlot) {
	slot := &uploadSlot{}
	return context.WithValue(ctx, uploadKey{}, slot), slot
}

// cancelUpload deletes the upload session recorded in slot, if any. It
// runs even when ctx is already cancelled (an interrupted run), for at
// most two seconds. Failure is not an error: registries purge abandoned
// uploads themselves.
func (c *client) cancelUpload(ctx context.Context, slot *uploadSlot) {
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
