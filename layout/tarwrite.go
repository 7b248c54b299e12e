package layout

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle/spec"
)

// TarWriter writes a bundle as one tar stream, in DESIGN.md's order:
// oci-layout, index.json, ferry.json, manifests and indexes, configs,
// layers. The caller writes the entries in that order; TarWriter makes each
// header deterministic (mode 0444, uid/gid 0, a fixed time) and verifies
// every blob as it streams through, so a blob that does not match its
// descriptor fails the write.
type TarWriter struct {
	tw    *tar.Writer
	mtime time.Time
	names map[string]bool
}

// NewTarWriter writes entries to w, stamping them with mtime.
func NewTarWriter(w io.Writer, mtime time.Time) *TarWriter {
	return &TarWriter{tw: tar.NewWriter(w), mtime: mtime.UTC().Truncate(time.Second), names: map[string]bool{}}
}

func (t *TarWriter) header(name string, size int64) error {
	if t.names[name] {
		return fmt.Errorf("tar entry %s written twice", name)
	}
	t.names[name] = true
	return t.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     0o444,
		ModTime:  t.mtime,
		Uname:    "",
		Gname:    "",
	})
}

// WriteFile writes a small metadata file (oci-layout, index.json, ferry.json).
func (t *TarWriter) WriteFile(name string, data []byte) error {
	if err := t.header(name, int64(len(data))); err != nil {
		return err
	}
	_, err := t.tw.Write(data)
	return err
}

// WriteFileFunc writes a metadata file of size bytes that write produces
// (ferry.json and index.json, encoded as they are written rather than held
// whole); write producing any other number of bytes is an error.
func (t *TarWriter) WriteFileFunc(name string, size int64, write func(io.Writer) error) error {
	if err := t.header(name, size); err != nil {
		return err
	}
	n, err := spec.Count(func(w io.Writer) error { return write(io.MultiWriter(t.tw, w)) })
	if err == nil && n != size {
		err = fmt.Errorf("writing %s: %d bytes, not the %d its header says", name, n, size)
	}
	return err
}

// WriteBlob streams r into the tar as the blob desc, verifying it on the way.
func (t *TarWriter) WriteBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	vr, err := NewVerifyReader(ctxReader{ctx, r}, desc)
	if err != nil {
		return err
	}
	if err := t.header(BlobName(desc.Digest), desc.Size); err != nil {
		return err
	}
	if _, err := Copy(t.tw, vr, desc.Size); err != nil {
		return fmt.Errorf("writing blob %s: %w", desc.Digest, err)
	}
	return nil
}

// WriteCheckedBlob writes data, which the caller has already verified
// against desc (hashed as it arrived), as the blob desc, without hashing
// it a second time. Its length is still checked.
func (t *TarWriter) WriteCheckedBlob(desc ocispec.Descriptor, data []byte) error {
	if int64(len(data)) != desc.Size {
		return fmt.Errorf("writing blob %s: %w: %d bytes, want %d", desc.Digest, ErrSizeMismatch, len(data), desc.Size)
	}
	return t.WriteFile(BlobName(desc.Digest), data)
}

// Close writes the tar trailer. It does not close the underlying writer.
func (t *TarWriter) Close() error { return t.tw.Close() }
