package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/verify"
)

// streamSmall is the largest blob a tarball import holds in memory so that
// its upload can go on while the stream moves past it. At most --jobs such
// uploads are in flight, plus one blob being read: memory stays under
// (jobs+1) × streamSmall whatever the bundle holds. A larger blob is sent
// straight from the stream while the small ones already read go on.
const streamSmall = 1 << 20

// streamWindow keeps a tarball import's uploads and mounts in flight while
// the stream is read once, in order: at most jobs at once; after a failure
// nothing new starts and the ones under way finish.
type streamWindow struct {
	eg     errgroup.Group
	failed atomic.Bool
	mu     sync.Mutex
	later  []laterMount // mounts whose source is still being uploaded
}

// laterMount is a mount into rb's repository from one where an upload is
// under way: a struct, not a closure, as there can be one for every
// repository × shared layer.
type laterMount struct {
	rb   RepoBlob
	from string
}

func newStreamWindow(jobs int) *streamWindow {
	w := &streamWindow{}
	w.eg.SetLimit(jobs)
	return w
}

// start runs f in the window, waiting for a free place first.
func (w *streamWindow) start(f func() error) {
	w.eg.Go(func() error {
		if w.failed.Load() {
			return nil
		}
		if err := f(); err != nil {
			w.failed.Store(true)
			return err
		}
		return nil
	})
}

// wait waits for everything started, then, unless something failed, runs
// the mounts left for later with mount, spread over the window too.
func (w *streamWindow) wait(mount func(RepoBlob, string) error) error {
	if err := w.eg.Wait(); err != nil || w.failed.Load() {
		return err
	}
	for _, m := range w.later {
		w.start(func() error { return mount(m.rb, m.from) })
	}
	w.later = nil
	return w.eg.Wait()
}

// pushStream reads every blob of a tarball as it goes by, verified: the ones
// the destination lacks are pushed (to the first repository that needs
// them, then mounted into the others), the rest are hashed and dropped. The
// stream is read once, in order, while up to imp.jobs uploads and mounts
// are in flight. If any blob fails, or the stream ends before every blob
// the images need has gone by, it returns an error and nothing more is
// pushed: no manifest, no tag. In a dry run nothing is pushed; every blob
// is still verified.
func (imp *importer) pushStream(ctx context.Context, p *importPlan, sum *ImportSummary) error {
	need := newPairIndex(p.missing)
	var total int64
	for _, b := range imp.report.Manifest.Blobs {
		if b.Included && !layout.IsManifest(b.MediaType) {
			total += b.Size
		}
	}
	seen := spec.NewBlobSet(imp.report.Manifest)
	imp.prog.Start("import", total)
	defer imp.prog.Done()
	w := newStreamWindow(imp.jobs)
	err := imp.readStream(ctx, p, need, seen, w)
	if err != nil {
		w.failed.Store(true)
	}
	// The uploads under way finish whatever happened: each verifies
	// itself, and a re-run skips what they stored.
	if werr := w.wait(func(rb RepoBlob, from string) error { return imp.mountOrPush(ctx, rb, from) }); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	return imp.report.Unseen(seen, imp.tar.Name())
}

// readStream reads the tarball's blobs in order, marking each in seen, and
// hands their uploads and mounts to w. It stops at the first failure, its
// own or one in w.
func (imp *importer) readStream(ctx context.Context, p *importPlan, need pairIndex, seen *spec.BlobSet, w *streamWindow) error {
	for !w.failed.Load() {
		if err := ctx.Err(); err != nil {
			return err
		}
		desc, r, err := imp.tar.NextBlob()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", verify.ErrBundleInvalid, err)
		}
		// Pushed to the first repository that lacks it, then mounted into
		// the others; mounted into all of them when the destination holds
		// it elsewhere already; hashed and dropped when nothing needs it.
		targets, from := need.of(desc.Digest), p.presentIn[desc.Digest]
		if imp.opts.DryRun {
			targets = nil
		}
		switch {
		case len(targets) > 0 && from == "" && desc.Size <= streamSmall:
			if err := imp.pushBuffered(ctx, desc, r, targets, w); err != nil {
				return err
			}
			targets = nil
		case len(targets) > 0 && from == "":
			if err := imp.pushFromStream(ctx, desc, r, targets[0].Repository); err != nil {
				return err
			}
			from, targets = targets[0].Repository, targets[1:]
		default:
			if _, err := layout.Copy(io.Discard, layout.ContextReader(ctx, countingReader{r, imp.prog}), desc.Size); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return imp.bundleFault(desc, err)
			}
		}
		seen.Add(desc.Digest)
		for _, rb := range targets {
			w.start(func() error { return imp.mountOrPush(ctx, rb, from) })
		}
	}
	return nil
}

// pushBuffered reads a small blob into memory, verified, and uploads it in
// w to the first of targets; the mounts into the others wait until every
// upload is done. The bytes can be sent again: the upload is retried.
func (imp *importer) pushBuffered(ctx context.Context, desc ocispec.Descriptor, r io.Reader, targets []RepoBlob, w *streamWindow) error {
	var buf bytes.Buffer
	buf.Grow(int(desc.Size))
	if _, err := layout.Copy(&buf, layout.ContextReader(ctx, r), desc.Size); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return imp.bundleFault(desc, err)
	}
	data, first := buf.Bytes(), targets[0].Repository
	w.start(func() error {
		err := imp.upload(ctx, desc, first, true, func(int) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		})
		if err != nil {
			return err
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, rb := range targets[1:] {
			w.later = append(w.later, laterMount{rb, first})
		}
		return nil
	})
	return nil
}

// pushFromStream uploads the blob r yields to repository, verified on the
// way. When an upload fails after the stream's bytes have gone by, it is
// tried again with the blob read anew from its place in the tarball file or
// split set; a compressed tarball or standard input cannot be read again,
// and the import fails (a re-run skips what arrived).
func (imp *importer) pushFromStream(ctx context.Context, desc ocispec.Descriptor, r io.Reader, repository string) error {
	return imp.upload(ctx, desc, repository, imp.tar.CanReopen(), func(attempt int) (io.ReadCloser, error) {
		if attempt == 0 {
			return io.NopCloser(r), nil
		}
		return imp.tar.Reopen(ctx, desc)
	})
}
