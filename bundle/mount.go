package bundle

import (
	"context"
	"net/http"
	"net/url"
	"sync"

	"oras.land/oras-go/v2/registry/remote"
)

// A registry that cannot mount a blob answers the mount request with 202
// and an upload session instead. oras-go then asks for the content to
// upload; for a blob a delta omits there is none. uploadTracker notes where
// such a session was opened so ferry can cancel it rather than leave it
// behind. (oras-go has no call to cancel an upload, so this is the one
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
	if err != nil || req.Method != http.MethodPost || resp.StatusCode != http.StatusAccepted || !req.URL.Query().Has("mount") {
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

// cancelUpload deletes the upload session a mount opened, if any. Failure
// is not an error: registries purge abandoned uploads themselves.
func (c *client) cancelUpload(ctx context.Context, slot *uploadSlot) {
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
