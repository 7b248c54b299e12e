package verify

import (
	"context"
	"errors"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/layout"
)

// Head checks what can be checked from the head of a tarball: index.json,
// ferry.json and every manifest, and that they agree. It reads no config or
// layer. The report's Problems are empty when the head is sound.
func Head(ctx context.Context, tr *layout.TarReader) (*Report, error) {
	tr.DropUnsignedBytes() // kept only for the signature check
	head, err := tr.ReadHead()
	if err != nil {
		return nil, Invalid(err)
	}
	// A tarball that can be read again serves its manifests again when
	// they are pushed: the graph holds none of their bytes.
	graph := layout.NewGraph()
	if again := tr.Again(); again != nil {
		graph = layout.NewGraphOver(again)
	}
	rep := &Report{Graph: graph, Manifest: head.Manifest, HasManifestFile: true, SignedBy: -1,
		manifestFile: head.ManifestFile, signature: head.Signature, seen: spec.NewBlobSet(head.Manifest)}
	if head.RereadManifestFile != nil { // not held: read again if a key needs it whole
		rep.manifestSum, rep.reread = head.ManifestSum, head.RereadManifestFile
	}
	rep.shareDigests()
	if err := rep.walk(ctx, head, head.Index); err != nil {
		return nil, err
	}
	for _, d := range rep.descs {
		if head.Exists(*d) && rep.seen.Add(d.Digest) {
			rep.Blobs++
			rep.Bytes += d.Size
		}
	}
	rep.checkManifest()
	tr.ReleaseManifests()
	return rep, nil
}

// seen records that blob desc went by in the stream, verified.
func (r *Report) sawBlob(desc ocispec.Descriptor) {
	if r.seen.Add(desc.Digest) {
		r.Blobs++
		r.Bytes += desc.Size
	}
}

// Unseen is the check at the end of a stream that someone else read (an
// import): every blob the graphs need must have gone by (seen), unless
// ferry.json omits it. It returns an error wrapping ErrBundleInvalid that
// names each blob that did not, and the images it breaks; the report is
// not changed.
func (r *Report) Unseen(seen *spec.BlobSet, name string) error {
	var problems []Problem
	for _, d := range r.descs {
		if !seen.Has(d.Digest) && !r.seen.Has(d.Digest) && !r.omitted(d.Digest) && !r.foreign(*d) {
			problems = append(problems, r.blobProblemOf(d.Digest, neverWentBy(name)))
		}
	}
	return r.errWith(problems...)
}

func neverWentBy(name string) error {
	return fmt.Errorf("never went by in %s (truncated, an entry dropped, or a volume missing?)", name)
}

// finish is called at the end of a stream: every blob the graphs need must
// have gone by, unless ferry.json omits it.
func (r *Report) finish(name string) {
	for _, d := range r.descs {
		switch {
		case r.seen.Has(d.Digest):
		case r.foreign(*d):
			r.Foreign++
		case r.omitted(d.Digest):
			r.Omitted++
			r.OmittedBytes += d.Size
		default:
			r.blobProblem(d.Digest, neverWentBy(name))
		}
	}
}

// Stream verifies a tarball in one pass: the head, then every blob hashed
// as it goes by, then that nothing the graphs need is missing. A blob that
// fails ends the pass: the stream after it cannot be trusted to be aligned.
func Stream(ctx context.Context, tr *layout.TarReader, opts Options) (*Report, error) {
	rep, err := Head(ctx, tr)
	if err != nil {
		return nil, err
	}
	if err := rep.CheckSignature(opts.Keys); err != nil {
		return rep, nil // before any blob: a stream not signed by the key is not read on
	}
	prog := opts.progress()
	var total int64
	for _, b := range rep.Manifest.Blobs {
		if b.Included && !layout.IsManifest(b.MediaType) {
			total += b.Size
		}
	}
	prog.Start("verify", total)
	defer prog.Done()
	w := progressWriter{prog}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		desc, r, err := tr.NextBlob()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			rep.add(Problem{Err: err})
			return rep, nil
		}
		if _, err := layout.Copy(w, layout.ContextReader(ctx, r), desc.Size); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.blobProblem(desc.Digest, err)
			return rep, nil
		}
		rep.sawBlob(desc)
	}
	rep.finish(tr.Name())
	return rep, nil
}

// Path verifies the bundle at path in whatever form it has (layout.Open):
// a directory, a .tar or .tar.gz file, any volume of a split set, or "-"
// for standard input.
func Path(ctx context.Context, path string, opts Options) (*Report, error) {
	b, err := layout.Open(path)
	if err != nil {
		return nil, Invalid(err)
	}
	defer b.Close()
	return Opened(ctx, b, opts)
}

// Opened verifies a bundle layout.Open opened.
func Opened(ctx context.Context, b layout.Bundle, opts Options) (*Report, error) {
	switch b := b.(type) {
	case *layout.Dir:
		return Bundle(ctx, b, opts)
	case *layout.TarReader:
		return Stream(ctx, b, opts)
	}
	return nil, fmt.Errorf("%s: %w: a bundle form ferry cannot verify", b.Name(), layout.ErrUnsupported)
}
