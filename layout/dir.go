package layout

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle/spec"
)

// blobPerm is the mode of a finished blob: read-only, since its name is its hash.
const blobPerm = 0o444

// Dir is an OCI image layout in a directory.
type Dir struct {
	root string

	// Blobs are synced in the background as they land (see WriteBlob);
	// Sync waits for them.
	syncing  sync.WaitGroup
	syncSlot chan struct{} // bounds the fsyncs in flight
	mu       sync.Mutex
	pending  []string        // blobs waiting for their fsync
	syncers  int             // goroutines draining pending, at most syncJobs
	syncErr  error           // the first background fsync that failed
	synced   map[string]bool // directories holding blobs synced since the last Sync
}

// syncJobs bounds the background fsyncs of one Dir: enough to keep the disk
// busy while the network fills the page cache, few enough not to starve it.
const syncJobs = 2

func newDir(root string) *Dir {
	return &Dir{root: root, syncSlot: make(chan struct{}, syncJobs), synced: map[string]bool{}}
}

// CreateDir opens the layout at root for writing, creating the directory,
// blobs/sha256 and oci-layout when missing. An existing layout is reused, so
// an interrupted export can resume into it.
func CreateDir(root string) (*Dir, error) {
	if err := os.MkdirAll(filepath.Join(root, "blobs", string(digest.SHA256)), 0o755); err != nil {
		return nil, fmt.Errorf("creating bundle directory: %w", err)
	}
	d := newDir(root)
	if err := d.checkLayoutFile(); err == nil {
		return d, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	data, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := WriteFileBytes(filepath.Join(root, FileOCILayout), 0o644, data); err != nil {
		return nil, err
	}
	return d, nil
}

// OpenDir opens an existing layout for reading; it checks oci-layout.
func OpenDir(root string) (*Dir, error) {
	d := newDir(root)
	if err := d.checkLayoutFile(); err != nil {
		return nil, err
	}
	return d, nil
}

// Root is the directory the layout lives in.
func (d *Dir) Root() string { return d.root }

// Name is the directory, for messages.
func (d *Dir) Name() string { return d.root }

// Close waits for the background fsyncs of the blobs written (see
// WriteBlob), so that none outlives the export that wrote them, whether it
// failed or not; it reports the first that failed. A Dir opened for
// reading has none.
func (d *Dir) Close() error {
	d.syncing.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.syncErr
}

func (d *Dir) checkLayoutFile() error {
	f, err := openRegular(filepath.Join(d.root, FileOCILayout))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w: no %s file (is this a bundle?): %w", d.root, ErrInvalidLayout, FileOCILayout, fs.ErrNotExist)
		}
		return err
	}
	defer f.Close()
	return ParseLayoutFile(f, filepath.Join(d.root, FileOCILayout))
}

// ParseLayoutFile checks the oci-layout file.
func ParseLayoutFile(r io.Reader, name string) error {
	data, err := spec.ReadCapped(r, 4096, name)
	if err != nil {
		return err
	}
	var l ocispec.ImageLayout
	if err := json.Unmarshal(data, &l); err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrInvalidLayout, err)
	}
	if l.Version != ocispec.ImageLayoutVersion {
		return fmt.Errorf("%s: %w: imageLayoutVersion %q, want %q", name, ErrInvalidLayout, l.Version, ocispec.ImageLayoutVersion)
	}
	return nil
}

// BlobPath is where the blob with digest dg lives. The digest is validated
// first, so the path never leaves the layout.
func (d *Dir) BlobPath(dg digest.Digest) (string, error) {
	if err := ValidateDigest(dg); err != nil {
		return "", err
	}
	return filepath.Join(d.root, BlobName(dg)), nil
}

// BlobName is the slash-separated path of a blob inside a layout. dg must
// have been validated.
func BlobName(dg digest.Digest) string {
	return "blobs/" + string(dg.Algorithm()) + "/" + dg.Encoded()
}

// Fetch opens the blob described by desc. The returned reader verifies size
// and digest and fails at EOF on a mismatch; it also stops when ctx is done.
func (d *Dir) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	path, err := d.BlobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := openRegular(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w (%s)", desc.Digest, ErrBlobNotFound, BlobName(desc.Digest))
		}
		return nil, fmt.Errorf("opening blob %s: %w", desc.Digest, err)
	}
	if fi, err := f.Stat(); err == nil && fi.Size() != desc.Size {
		f.Close()
		return nil, fmt.Errorf("blob %s: %w: file %s has %d bytes, descriptor says %d", desc.Digest, ErrSizeMismatch, BlobName(desc.Digest), fi.Size(), desc.Size)
	}
	vr, err := NewVerifyReader(ctxReader{ctx, f}, desc)
	if err != nil {
		f.Close()
		return nil, err
	}
	return readCloser{vr, f}, nil
}

// OpenChecked opens a blob that has already been verified in this run, for
// a second read: it checks the file's size and limits the read to it, but
// does not hash it again. Use it only where the bytes are hashed again on
// arrival, as a registry does when an upload is committed under its digest.
func (d *Dir) OpenChecked(desc ocispec.Descriptor) (io.ReadCloser, error) {
	path, err := d.BlobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := openRegular(path)
	if err != nil {
		return nil, fmt.Errorf("opening blob %s: %w", desc.Digest, err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != desc.Size {
		f.Close()
		return nil, fmt.Errorf("blob %s: %w: the file changed since it was verified", desc.Digest, ErrSizeMismatch)
	}
	return readCloser{io.LimitReader(f, desc.Size), f}, nil
}

// Exists reports whether a file for the blob is present, without reading
// it. A file of another size than desc.Size is present but cannot be the
// blob: Exists reports it present with an error wrapping ErrSizeMismatch.
func (d *Dir) Exists(desc ocispec.Descriptor) (bool, error) {
	path, err := d.BlobPath(desc.Digest)
	if err != nil {
		return false, err
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return true, fmt.Errorf("%s: %w (it is a %s)", BlobName(desc.Digest), ErrNotRegular, fileKind(fi.Mode()))
	}
	if fi.Size() != desc.Size {
		return true, fmt.Errorf("%w: the file has %d bytes, the descriptor says %d", ErrSizeMismatch, fi.Size(), desc.Size)
	}
	return true, nil
}

// CheckBlob hashes the blob's file and reports whether it matches desc.
func (d *Dir) CheckBlob(ctx context.Context, desc ocispec.Descriptor) error {
	rc, err := d.Fetch(ctx, desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// WriteBlob streams r into the layout as the blob described by desc. The
// file appears at its final path only once every byte has been verified;
// otherwise nothing is left behind.
//
// Each blob is fsynced in the background once it is in place, so the disk
// writes back while the network brings the next blobs, and no download
// waits for the disk. Call Sync before writing the metadata that declares
// the bundle complete: it waits for those fsyncs. A blob torn by a crash
// before that is caught when an export resumes, since existing blobs are
// hashed before they are reused.
func (d *Dir) WriteBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	path, err := d.BlobPath(desc.Digest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	vr, err := NewVerifyReader(ctxReader{ctx, r}, desc)
	if err != nil {
		return err
	}
	err = writeAtomic(path, blobPerm, false, func(w io.Writer) error {
		_, err := Copy(w, vr, desc.Size)
		return err
	})
	if err == nil {
		d.syncLater(path)
	}
	return err
}

// syncLater fsyncs a finished blob in the background, at most syncJobs at
// a time, and records the first failure for Sync. Blobs waiting for the
// disk are a queue of paths drained by at most syncJobs goroutines, not a
// goroutine each: at tens of thousands of blobs on a slow disk, thousands
// waited, with a stack each.
func (d *Dir) syncLater(path string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending = append(d.pending, path)
	if d.syncers < syncJobs {
		d.syncers++
		d.syncing.Add(1)
		go d.drainSyncs()
	}
}

// drainSyncs fsyncs pending blobs until none is left.
func (d *Dir) drainSyncs() {
	defer d.syncing.Done()
	for {
		d.mu.Lock()
		if len(d.pending) == 0 {
			d.pending = nil
			d.syncers--
			d.mu.Unlock()
			return
		}
		path := d.pending[0]
		d.pending = d.pending[1:]
		d.mu.Unlock()
		d.syncSlot <- struct{}{}
		err := syncFile(path)
		<-d.syncSlot
		d.mu.Lock()
		if err != nil && d.syncErr == nil {
			d.syncErr = err
		}
		d.synced[filepath.Dir(path)] = true
		d.mu.Unlock()
	}
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	return nil
}

// Sync makes every blob written so far durable: it waits for their
// background fsyncs, then syncs the directories they were renamed into.
// Only ferry's own files are synced, never the whole file system.
func (d *Dir) Sync() error {
	d.syncing.Wait()
	d.mu.Lock()
	err, dirs := d.syncErr, d.synced
	d.syncErr, d.synced = nil, map[string]bool{}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	for dir := range dirs {
		syncDir(dir)
	}
	return nil
}

// Index reads and checks index.json.
func (d *Dir) Index() (*ocispec.Index, error) {
	f, err := openRegular(filepath.Join(d.root, FileIndex))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w: no %s: the bundle is incomplete (an export that did not finish? run it again)", d.root, ErrIncomplete, FileIndex)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidLayout, err)
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil && fi.Size() <= MaxIndexSize {
		size = fi.Size() // read into one slice of its size on disk
	}
	return parseIndex(f, size, filepath.Join(d.root, FileIndex))
}

// WriteIndex writes index.json atomically.
func (d *Dir) WriteIndex(idx *ocispec.Index) error {
	return d.writeIndex(func(w io.Writer) error { return EncodeIndex(w, idx) })
}

// WriteIndexOf writes atomically an index.json of n manifests, each made by
// manifest(i) as it is written (IndexOf).
func (d *Dir) WriteIndexOf(n int, manifest func(i int) ocispec.Descriptor) error {
	return d.writeIndex(func(w io.Writer) error { return EncodeIndexOf(w, n, manifest) })
}

func (d *Dir) writeIndex(encode func(io.Writer) error) error {
	return d.writeBuffered(FileIndex, encode)
}

// writeBuffered writes the file name atomically, through a buffer.
func (d *Dir) writeBuffered(name string, encode func(io.Writer) error) error {
	return WriteFileAtomic(filepath.Join(d.root, name), 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 64<<10)
		if err := encode(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// BundleManifest reads ferry.json. A plain OCI layout has none: the error
// then wraps fs.ErrNotExist.
func (d *Dir) BundleManifest() (*spec.Manifest, error) {
	f, err := d.OpenBundleFile()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return spec.Parse(f, filepath.Join(d.root, FileBundle))
}

// OpenBundleFile opens ferry.json to be read as a stream (spec.Parse),
// refused by its size on disk before a byte is read; the error wraps
// fs.ErrNotExist when there is none.
func (d *Dir) OpenBundleFile() (io.ReadCloser, error) {
	f, _, err := openCapped(filepath.Join(d.root, FileBundle), spec.MaxSize)
	return f, err
}

// BundleFile reads ferry.json's bytes, as they were signed, capped at
// spec.MaxSize.
func (d *Dir) BundleFile() ([]byte, error) {
	return readFileCapped(filepath.Join(d.root, FileBundle), spec.MaxSize)
}

// Signature reads ferry.json.sig; a bundle that is not signed has none,
// and the error wraps fs.ErrNotExist.
func (d *Dir) Signature() ([]byte, error) {
	return readFileCapped(filepath.Join(d.root, FileSignature), MaxSignatureSize)
}

// WriteSignature writes ferry.json.sig atomically.
func (d *Dir) WriteSignature(sig []byte) error {
	return WriteFileBytes(filepath.Join(d.root, FileSignature), 0o644, sig)
}

func readFileCapped(path string, limit int64) ([]byte, error) {
	f, size, err := openCapped(path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Read into one slice of its size on disk (a ferry.json of tens of
	// MiB is not held twice while it is read).
	return spec.ReadCappedHint(f, limit, size, path)
}

// openCapped opens a regular file of the bundle, refused by its size
// (returned; 0 when unknown) before a byte of it is read when that is over
// limit.
func openCapped(path string, limit int64) (*os.File, int64, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, 0, err
	}
	var size int64
	if fi, err := f.Stat(); err == nil {
		if size = fi.Size(); size > limit {
			f.Close()
			return nil, 0, fmt.Errorf("%s: %w: %d bytes, more than %d", path, ErrTooLarge, size, limit)
		}
	}
	return f, size, nil
}

// ErrNotRegular: a bundle file that is a FIFO, a device, a directory or a
// socket (or a symlink to one). It is refused, not opened: reading a FIFO
// would block forever. It matches ErrInvalidLayout.
var ErrNotRegular = fmt.Errorf("%w: not a regular file", ErrInvalidLayout)

// openRegular opens a file of the bundle for reading only if it is a
// regular file. A symlink is followed, to a regular file inside or outside
// the bundle (its bytes are verified like any other). The open itself does
// not block: a FIFO is opened non-blocking, then refused.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w (it is a %s)", path, ErrNotRegular, fileKind(fi.Mode()))
	}
	return f, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeNamedPipe != 0:
		return "FIFO"
	case m&os.ModeDevice != 0:
		return "device"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return m.Type().String()
}

// WriteBundleManifest writes ferry.json atomically.
func (d *Dir) WriteBundleManifest(m *spec.Manifest) error {
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	return d.WriteBundleFile(data)
}

// WriteBundleFile writes ferry.json's bytes atomically.
func (d *Dir) WriteBundleFile(data []byte) error {
	return WriteFileBytes(filepath.Join(d.root, FileBundle), 0o644, data)
}

// WriteBundleFileFunc writes atomically the ferry.json that write
// produces, encoded as it is written.
func (d *Dir) WriteBundleFileFunc(write func(io.Writer) error) error {
	return d.writeBuffered(FileBundle, write)
}

// ParseIndex reads an index.json of at most MaxIndexSize bytes and checks
// every descriptor in it.
func ParseIndex(r io.Reader, name string) (*ocispec.Index, error) {
	return parseIndex(r, 0, name)
}

// parseIndex is ParseIndex of an index.json thought to be about hint bytes
// (spec.ReadCappedHint).
func parseIndex(r io.Reader, hint int64, name string) (*ocispec.Index, error) {
	data, err := spec.ReadCappedHint(r, MaxIndexSize, hint, name)
	if err != nil {
		return nil, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalidLayout, err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("%s: %w: schemaVersion %d, want 2", name, ErrInvalidLayout, idx.SchemaVersion)
	}
	one := map[string]string{}
	for i, desc := range idx.Manifests {
		if err := ValidateDescriptor(desc); err != nil {
			return nil, fmt.Errorf("%s: manifests[%d]: %w", name, i, err)
		}
		if !IsManifest(desc.MediaType) {
			return nil, fmt.Errorf("%s: manifests[%d] (%s): %w: media type %q is not a manifest or index", name, i, desc.Digest, ErrInvalidLayout, desc.MediaType)
		}
		shareIndexStrings(&idx.Manifests[i], one)
	}
	return &idx, nil
}

// shareIndexStrings has desc keep one copy of what index.json's entries
// repeat: the media type every entry has (one in one), and an annotation
// value equal to another of the same entry (containerd's image name is the
// reference name).
func shareIndexStrings(desc *ocispec.Descriptor, one map[string]string) {
	if c, ok := one[desc.MediaType]; ok {
		desc.MediaType = c
	} else {
		one[desc.MediaType] = desc.MediaType
	}
	if len(desc.Annotations) < 2 {
		return
	}
	var values []string
	for k, v := range desc.Annotations {
		if i := slices.Index(values, v); i >= 0 {
			desc.Annotations[k] = values[i] // a value changed in place
		} else {
			values = append(values, v)
		}
	}
}

// MarshalIndex is the canonical form of index.json: the bytes of
// json.MarshalIndent(idx, "", "  ") and a newline, in a slice of exactly
// their size.
func MarshalIndex(idx *ocispec.Index) ([]byte, error) {
	return spec.Exactly(func(w io.Writer) error { return EncodeIndex(w, idx) })
}

// IndexOf is MarshalIndex of an index of n manifests, each made by
// manifest(i) as it is written: the descriptors of tens of thousands of
// images, and their annotations, are never all in memory at once.
func IndexOf(n int, manifest func(i int) ocispec.Descriptor) ([]byte, error) {
	return spec.Exactly(func(w io.Writer) error { return EncodeIndexOf(w, n, manifest) })
}

// EncodeIndexOf writes IndexOf's bytes to w.
func EncodeIndexOf(w io.Writer, n int, manifest func(i int) ocispec.Descriptor) error {
	return encodeIndex(w, &ocispec.Index{}, n, manifest)
}

// EncodeIndex writes MarshalIndex's bytes to w a descriptor at a time.
func EncodeIndex(w io.Writer, idx *ocispec.Index) error {
	return encodeIndex(w, idx, len(idx.Manifests), func(i int) ocispec.Descriptor { return idx.Manifests[i] })
}

// encodeIndex writes idx with the n manifests manifest makes in place of
// idx.Manifests.
func encodeIndex(w io.Writer, idx *ocispec.Index, n int, manifest func(int) ocispec.Descriptor) error {
	idx.Versioned = specs.Versioned{SchemaVersion: 2}
	idx.MediaType = ocispec.MediaTypeImageIndex
	o := spec.NewIndented(w)
	o.Field("schemaVersion", idx.SchemaVersion)
	o.Field("mediaType", idx.MediaType)
	if idx.ArtifactType != "" {
		o.Field("artifactType", idx.ArtifactType)
	}
	o.List("manifests", n, func(i int) any { return manifest(i) })
	if idx.Subject != nil {
		o.Field("subject", idx.Subject)
	}
	if len(idx.Annotations) > 0 {
		o.Field("annotations", idx.Annotations)
	}
	return o.Close()
}

type readCloser struct {
	io.Reader
	io.Closer
}

// ContextReader is r, stopping with ctx's error once ctx is done: a long
// copy ends on Ctrl-C between two reads.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

// ctxReader stops a long copy when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
