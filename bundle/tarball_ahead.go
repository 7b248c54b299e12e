package bundle

import (
	"bytes"
	"context"
	"io"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/layout"
)

// fetched is a small blob downloaded ahead of the tarball's writer: done
// closes when data (verified) or err is set.
type fetched struct {
	done chan struct{}
	data []byte
	err  error
}

// writeBlobs writes order's blobs into tw, in that order, while the small
// ones (up to streamSmall: manifests, from the graph's scratch file, and
// configs and small layers, from their sources) further on are read
// ahead, up to e.jobs at once. The writer releases each one's place as it
// writes it: memory stays under e.jobs × streamSmall. A larger
// blob streams from its source straight into tw while the downloads ahead
// go on.
func (e *exporter) writeBlobs(ctx context.Context, tw *layout.TarWriter, order []*PlannedBlob) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	// The blobs in order, each small one with its download started: at
	// most e.jobs downloads and e.jobs entries ahead of the writer, never
	// an entry made for every blob at the start.
	type next struct {
		b *PlannedBlob
		f *fetched
	}
	queue := make(chan next, e.jobs)
	places := make(chan struct{}, e.jobs)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(queue)
		for _, b := range order {
			var f *fetched
			if b.Desc.Size <= streamSmall {
				select {
				case places <- struct{}{}:
				case <-ctx.Done():
					return
				}
				f = &fetched{done: make(chan struct{})}
				wg.Add(1)
				go func() {
					defer wg.Done()
					f.data, f.err = e.fetchSmall(ctx, *b)
					close(f.done)
				}()
			}
			select {
			case queue <- next{b, f}:
			case <-ctx.Done():
				return
			}
		}
	}()
	written := 0
	for n := range queue {
		if err := e.writeOne(ctx, tw, *n.b, n.f, places); err != nil {
			return err
		}
		e.sum.Transferred++
		e.sum.TransferredBytes += n.b.Desc.Size
		written++
	}
	if written < len(order) {
		return ctx.Err() // the queue stopped early: cancelled
	}
	return nil
}

// writeOne writes b into tw: from f, once its download is done (freeing its
// place), or, when f is nil, straight from its source.
func (e *exporter) writeOne(ctx context.Context, tw *layout.TarWriter, b PlannedBlob, f *fetched, places chan struct{}) error {
	if f == nil {
		return e.copyBlob(ctx, b, tw.WriteBlob)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	<-places
	if f.err != nil {
		return f.err
	}
	data := f.data
	f.data = nil
	return tw.WriteCheckedBlob(*b.Desc, data)
}

// fetchSmall downloads blob b into memory, verified: the one hash it gets.
func (e *exporter) fetchSmall(ctx context.Context, b PlannedBlob) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(b.Desc.Size))
	err := e.copyBlob(ctx, b, func(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
		vr, err := layout.NewVerifyReader(layout.ContextReader(ctx, r), desc)
		if err != nil {
			return err
		}
		_, err = layout.Copy(&buf, vr, desc.Size)
		return err
	})
	return buf.Bytes(), err
}
