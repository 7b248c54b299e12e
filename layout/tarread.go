package layout

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle/spec"
)

// ErrUnsafeEntry: a tar entry that could write outside a directory or is
// not a plain file (absolute, "..", links, devices, FIFOs, repeats).
var ErrUnsafeEntry = errors.New("unsafe tar entry")

// TarReader reads a bundle tarball front to back, once, without extracting
// it: first the head (oci-layout, index.json, ferry.json, and the manifests
// and indexes that follow them), then each blob, verified as it is read.
// Every entry is checked before its bytes are used.
type TarReader struct {
	name   string
	where  func() string // the volume being read, for split sets
	tr     *tar.Reader
	closer io.Closer
	// seen holds the names of the entries met, but for the blobs
	// ferry.json lists: those are a bit each in blobs.
	seen    map[string]bool
	blobs   *spec.BlobSet
	head    *Head
	partial *spec.Manifest // ferry.json while the head is being read
	pending *tar.Header
	last    io.Reader // the blob handed out last, drained before the next

	// For Reopen: pos counts the bytes of the (uncompressed) tarball the
	// tar reader has consumed, so right after a header it is where that
	// entry's data starts (dataStart); offsets holds that place for each
	// blob read so far, by its place in ferry.json's blobs (0: not read;
	// no entry's data starts at 0), when the tarball can be read again.
	// section opens n bytes of the tarball at an offset when it can be
	// read again (an uncompressed file or split set); nil otherwise.
	pos       *posReader
	gzipped   bool
	dataStart int64
	section   func(off, n int64) (io.ReadCloser, error)
	offsets   []int64
	// limit bounds the uncompressed bytes the tarball can hold, from its
	// size on the medium (a gzip stream expands at most 1032 times); -1
	// when unknown (standard input). No entry may declare more.
	limit int64
	// dropUnsigned (DropUnsignedBytes) lets ReadHead drop ferry.json's
	// bytes when no signature follows it; unsignedDropped, that it has.
	dropUnsigned, unsignedDropped bool
}

// DropUnsignedBytes has ReadHead let go of ferry.json's bytes at the first
// manifest when no ferry.json.sig came before it: ferry writes the
// signature right after ferry.json, and a reader that keeps the bytes only
// to check a signature need not hold 35 MB (at 30,000 images) through the
// manifests and the walk. A signature met after that is refused. From a
// tarball that can be read again (CanReopen), ferry.json is not held at
// all: it is parsed as it streams by, its SHA-256 kept (ManifestSum), and
// read again from the file for a signature that needs it whole
// (RereadManifestFile). Call it before ReadHead; a reader that signs the
// bundle (ferry sign) does not.
func (t *TarReader) DropUnsignedBytes() { t.dropUnsigned = true }

// maxDeflateRatio is the most deflate can compress: 1032 to 1.
const maxDeflateRatio = 1032

// ErrNotReopenable: a blob of a compressed tarball, or of standard input,
// cannot be read a second time.
var ErrNotReopenable = errors.New("this tarball can only be read once (compressed, or standard input)")

// Head is what a reader can plan from: everything before the first config
// or layer.
type Head struct {
	Index    *ocispec.Index
	Manifest *spec.Manifest
	// ManifestFile is ferry.json's bytes, as they were signed; Signature,
	// ferry.json.sig's, or nil when the bundle is not signed.
	ManifestFile, Signature []byte
	// ManifestSum is the SHA-256 of ferry.json's bytes as they were parsed,
	// and RereadManifestFile reads them again from the tarball, when they
	// are not held (DropUnsignedBytes); RereadManifestFile is nil then
	// otherwise. What it reads is not checked: compare it with ManifestSum.
	ManifestSum        [32]byte
	RereadManifestFile func() ([]byte, error)
	// manifests holds each manifest and index, verified.
	manifests map[digest.Digest][]byte
}

// Fetch serves manifests and indexes from the head, so a graph can be walked
// before any blob is read.
func (h *Head) Fetch(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	data, ok := h.manifests[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("manifest %s: %w (it is not among the manifests at the head of the tarball)", desc.Digest, ErrBlobNotFound)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// ReleaseSignedBytes drops ferry.json's bytes from the head once its
// signature has been checked: an import streams on for a long time after.
func (t *TarReader) ReleaseSignedBytes() {
	if t.head != nil {
		t.head.ManifestFile, t.head.RereadManifestFile = nil, nil
	}
}

// ReleaseIndex drops the parsed index.json from the head once a report has
// walked it: a stream import of tens of thousands of images does not keep
// it to the end.
func (t *TarReader) ReleaseIndex() {
	if t.head != nil {
		t.head.Index = nil
	}
}

// Again is where a tarball that can be read again (CanReopen) serves its
// manifests and blobs a second time, each verified: a graph over it
// (NewGraphOver) need not hold the manifests' bytes. Nil for one that
// cannot.
func (t *TarReader) Again() Fetcher {
	if !t.CanReopen() {
		return nil
	}
	return again{t}
}

type again struct{ t *TarReader }

func (a again) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	return a.t.Reopen(ctx, desc)
}

// ReleaseManifests drops the head's manifests once a graph over Again has
// walked them, when the tarball can be read again: at 30,000 images they
// are 17 MB an import would otherwise hold to its end. The head's Fetch
// and Exists know none of them from then on. A tarball that cannot be
// read again keeps them.
func (t *TarReader) ReleaseManifests() {
	if t.head != nil && t.CanReopen() {
		t.head.manifests = nil
	}
}

// heldManifest is a manifest of the head, verified when it was read.
func (h *Head) heldManifest(d digest.Digest) ([]byte, bool) {
	data, ok := h.manifests[d]
	return data, ok
}

// Exists reports whether the head holds a manifest.
func (h *Head) Exists(desc ocispec.Descriptor) bool {
	_, ok := h.manifests[desc.Digest]
	return ok
}

// OpenTar opens a bundle tarball: a .tar or .tar.gz file (compression is
// detected by magic bytes, not by name), any volume of a split set (the
// whole set is read, each volume checked against the sums file), or "-" for
// standard input.
func OpenTar(p string) (*TarReader, error) {
	var (
		r        io.Reader
		closer   io.Closer
		where    = func() string { return "" }
		section  func(off, n int64) (io.ReadCloser, error) // reads again
		onMedium = int64(-1)                               // bytes of the tarball on the medium
	)
	switch base := SplitBase(p); {
	case p == "-":
		r, closer = os.Stdin, io.NopCloser(nil)
	case base != "":
		vr, err := OpenVolumes(base)
		if err != nil {
			return nil, err
		}
		r, closer, where, section = vr, vr, vr.Current, vr.Section
		onMedium = vr.Size()
	default:
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		r, closer = f, f
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			onMedium = fi.Size()
			section = func(off, n int64) (io.ReadCloser, error) {
				f, err := os.Open(p)
				if err != nil {
					return nil, err
				}
				return readCloser{io.NewSectionReader(f, off, n), f}, nil
			}
		}
	}
	name := p
	if p == "-" {
		name = "standard input"
	}
	tr, err := NewTarReader(r, name)
	if err != nil {
		closer.Close()
		return nil, err
	}
	tr.closer, tr.where = closer, where
	if !tr.gzipped {
		tr.section = section
	}
	if onMedium >= 0 {
		tr.limit = onMedium
		if tr.gzipped {
			tr.limit = onMedium * maxDeflateRatio
		}
	}
	return tr, nil
}

// NewTarReader reads a bundle tarball from r, gunzipping it if it starts
// with the gzip magic. name is used in errors.
func NewTarReader(r io.Reader, name string) (*TarReader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic, err := br.Peek(2)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	var src io.Reader = br
	gzipped := len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b
	if gzipped {
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: gzip: %w", name, err)
		}
		src = zr
	}
	pos := &posReader{r: src}
	return &TarReader{name: name, where: func() string { return "" }, tr: tar.NewReader(pos), seen: map[string]bool{},
		pos: pos, gzipped: gzipped, limit: -1}, nil
}

// Close closes the files behind the reader.
func (t *TarReader) Close() error {
	if t.closer != nil {
		return t.closer.Close()
	}
	return nil
}

// Name is what the reader reads, for messages.
func (t *TarReader) Name() string { return t.name }

// errorf is wrap for a new error.
func (t *TarReader) errorf(entry string, format string, args ...any) error {
	return t.wrap(entry, fmt.Errorf(format, args...))
}

// wrap names where err happened: the tarball (or, for a split set, the
// volume being read) and the entry.
func (t *TarReader) wrap(entry string, err error) error {
	loc := t.name
	if v := t.where(); v != "" {
		loc = v
	}
	if entry != "" {
		return fmt.Errorf("%s: entry %s: %w", loc, entry, err)
	}
	return fmt.Errorf("%s: %w", loc, err)
}

// next returns the next regular file entry, refusing unsafe ones and
// skipping directories and PAX global headers.
func (t *TarReader) next() (*tar.Header, error) {
	for {
		hdr, err := t.tr.Next()
		t.dataStart = t.pos.n
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, t.wrap("", fmt.Errorf("the tarball ends early (truncated?): %w", err))
			}
			return nil, t.wrap("", err)
		}
		name, err := cleanEntryName(hdr.Name)
		if err != nil {
			return nil, t.wrap(hdr.Name, err)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeXGlobalHeader:
			continue
		case tar.TypeReg:
		default:
			return nil, t.wrap(hdr.Name, fmt.Errorf("%w: type %q is not a regular file (links, devices, FIFOs and sparse files are refused)", ErrUnsafeEntry, string(hdr.Typeflag)))
		}
		if sparse(hdr) {
			// Its bytes in the tarball are not its content: a few bytes on the
			// medium could declare a terabyte of zeros. ferry never writes one.
			return nil, t.wrap(hdr.Name, fmt.Errorf("%w: a sparse file (ferry never writes one; its declared size is not on the medium)", ErrUnsafeEntry))
		}
		if hdr.Size < 0 {
			return nil, t.wrap(hdr.Name, fmt.Errorf("%w: negative size", ErrUnsafeEntry))
		}
		if t.limit >= 0 && t.pos.n+hdr.Size > t.limit {
			return nil, t.wrap(hdr.Name, fmt.Errorf("%w: it declares %d bytes, more than the rest of the bundle can hold (%d bytes on the medium)", ErrUnsafeEntry, hdr.Size, t.limit-t.pos.n))
		}
		if t.repeated(name) {
			return nil, t.wrap(hdr.Name, fmt.Errorf("%w: the entry appears twice", ErrUnsafeEntry))
		}
		hdr.Name = name
		return hdr, nil
	}
}

// repeated records that entry name went by and reports whether it had
// before. A blob's entry before ferry.json is recorded by name; ReadHead
// refuses it, so no blob is recorded both ways.
func (t *TarReader) repeated(name string) bool {
	if m := t.head0(); m != nil {
		if d, ok := blobDigest(name); ok {
			if t.blobs == nil {
				t.blobs = spec.NewBlobSet(m)
			}
			return !t.blobs.Add(d)
		}
	}
	if t.seen[name] {
		return true
	}
	t.seen[name] = true
	return false
}

// cleanEntryName refuses absolute names and names with ".." and returns
// the name without a leading "./".
func cleanEntryName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: absolute or malformed name", ErrUnsafeEntry)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: name contains \"..\"", ErrUnsafeEntry)
		}
	}
	clean := path.Clean(name)
	if clean == "." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%w: name leaves the bundle", ErrUnsafeEntry)
	}
	return clean, nil
}

// blobDigest parses blobs/<alg>/<hex>.
func blobDigest(name string) (digest.Digest, bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 3 || parts[0] != "blobs" {
		return "", false
	}
	d := digest.Digest(parts[1] + ":" + parts[2])
	return d, ValidateDigest(d) == nil
}

// ReadHead reads oci-layout, index.json and ferry.json (in any order, all
// before the first blob), then the manifests and indexes that follow them,
// each verified against ferry.json. It stops at the first config or layer.
func (t *TarReader) ReadHead() (*Head, error) {
	if t.head != nil {
		return t.head, nil
	}
	h := &Head{manifests: map[digest.Digest][]byte{}}
	var layoutSeen bool
	var total int64
	for {
		hdr, err := t.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if meta, err := t.readMetadata(hdr, h); err != nil {
			return nil, err
		} else if meta {
			layoutSeen = layoutSeen || hdr.Name == FileOCILayout
			continue
		}
		d, ok := blobDigest(hdr.Name)
		if !ok {
			continue // not part of the layout; never used
		}
		if !layoutSeen || h.Index == nil || h.Manifest == nil {
			return nil, t.errorf(hdr.Name, "blob before the bundle's metadata: a ferry tarball starts with oci-layout, index.json and ferry.json; for another tool's archive, extract it (tar -xf) and import the directory")
		}
		if t.dropUnsigned && h.Signature == nil && !t.unsignedDropped {
			// No signature to check them against.
			h.ManifestFile, h.RereadManifestFile, t.unsignedDropped = nil, nil, true
		}
		desc, err := t.describe(hdr, d)
		if err != nil {
			return nil, err
		}
		if !IsManifest(desc.MediaType) {
			t.pending = hdr
			break
		}
		if desc.Size > MaxManifestSize || total+desc.Size > MaxHeadManifests {
			return nil, t.wrap(hdr.Name, fmt.Errorf("%w: manifest of %d bytes", ErrTooLarge, desc.Size))
		}
		total += desc.Size
		vr, err := NewVerifyReader(t.tr, desc)
		if err != nil {
			return nil, t.wrap(hdr.Name, err)
		}
		data, err := readVerified(vr, desc.Size)
		if err != nil {
			return nil, t.wrap(hdr.Name, err)
		}
		h.manifests[desc.Digest] = data
	}
	switch {
	case !layoutSeen:
		return nil, t.errorf("", "%v: no %s entry", ErrInvalidLayout, FileOCILayout)
	case h.Index == nil:
		return nil, t.errorf("", "%v: no %s entry", ErrInvalidLayout, FileIndex)
	case h.Manifest == nil:
		return nil, t.errorf("", "no %s entry: only ferry tarballs can be read as a stream; for another tool's archive, extract it (tar -xf) and import the directory", FileBundle)
	}
	t.head = h
	return h, nil
}

// readMetadata reads hdr into h if it is one of the bundle's metadata
// files (oci-layout, index.json, ferry.json, its signature), and reports
// whether it was. Each parser's error names the entry.
func (t *TarReader) readMetadata(hdr *tar.Header, h *Head) (bool, error) {
	var err error
	// In an uncompressed file the rest of the medium holds what the header
	// declares (next checked that): the entry is read into one slice of
	// that size. Compressed or on standard input, it is read in chunks.
	var hint int64
	if t.limit >= 0 && !t.gzipped {
		hint = hdr.Size
	}
	switch hdr.Name {
	case FileOCILayout:
		err = ParseLayoutFile(t.tr, hdr.Name)
	case FileIndex:
		h.Index, err = parseIndex(t.tr, hint, hdr.Name)
	case FileBundle:
		if hdr.Size > spec.MaxSize { // refused by its header, before a byte is read
			return true, t.wrap("", fmt.Errorf("%s: %w: %d bytes, more than %d", hdr.Name, ErrTooLarge, hdr.Size, spec.MaxSize))
		}
		if t.dropUnsigned && t.section != nil {
			h.Manifest, h.ManifestSum, err = spec.ParseSum(t.tr, hdr.Name)
			h.RereadManifestFile = t.rereader(t.dataStart, hdr.Size, hdr.Name)
		} else if h.ManifestFile, err = spec.ReadCappedHint(t.tr, spec.MaxSize, hint, hdr.Name); err == nil {
			h.Manifest, err = spec.ParseBytes(h.ManifestFile, hdr.Name)
		}
		t.partial = h.Manifest
	case FileSignature:
		if t.unsignedDropped {
			return true, t.errorf(hdr.Name, "%w: the signature comes after the manifests; ferry writes it right after %s: sign the tarball again (ferry sign) to put it there", ErrInvalidLayout, FileBundle)
		}
		h.Signature, err = spec.ReadCapped(t.tr, MaxSignatureSize, hdr.Name)
	default:
		return false, nil
	}
	if err != nil {
		return true, t.wrap("", err)
	}
	return true, nil
}

// rereader reads the n bytes of entry name at off again, whole. Errors
// name the tarball as given, as Reopen's do: the stream may be in another
// volume by then.
func (t *TarReader) rereader(off, n int64, name string) func() ([]byte, error) {
	return func() ([]byte, error) {
		rc, err := t.section(off, n)
		if err == nil {
			defer rc.Close()
			var data []byte
			if data, err = spec.ReadCappedHint(rc, n, n, name); err == nil {
				return data, nil
			}
		}
		return nil, fmt.Errorf("%s: entry %s: %w", t.name, name, err)
	}
}

// describe checks a blob entry against ferry.json and returns its
// descriptor, with ferry.json's copy of the digest. For Reopen, it notes
// where the entry's data starts.
func (t *TarReader) describe(hdr *tar.Header, d digest.Digest) (ocispec.Descriptor, error) {
	m := t.head0()
	i, ok := m.BlobIndex(d)
	if !ok {
		return ocispec.Descriptor{}, t.errorf(hdr.Name, "ferry.json does not list this blob")
	}
	b := m.Blobs[i]
	if !b.Included {
		return ocispec.Descriptor{}, t.errorf(hdr.Name, "ferry.json marks this blob as omitted, yet it is in the tarball")
	}
	if b.Size != hdr.Size {
		return ocispec.Descriptor{}, t.wrap(hdr.Name, fmt.Errorf("%w: the entry has %d bytes, ferry.json says %d", ErrSizeMismatch, hdr.Size, b.Size))
	}
	if t.section != nil {
		if t.offsets == nil {
			t.offsets = make([]int64, len(m.Blobs))
		}
		t.offsets[i] = t.dataStart
	}
	return ocispec.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size}, nil
}

// head0 is the ferry.json being read, during or after ReadHead.
func (t *TarReader) head0() *spec.Manifest {
	if t.head != nil {
		return t.head.Manifest
	}
	return t.partial
}

// NextBlob returns the next config or layer: its descriptor from ferry.json
// and a reader that verifies it. A blob the caller does not read to the end
// is drained (and so still verified) by the next call. At the end of the
// stream it returns io.EOF.
func (t *TarReader) NextBlob() (ocispec.Descriptor, io.Reader, error) {
	if t.head == nil {
		return ocispec.Descriptor{}, nil, errors.New("NextBlob before ReadHead")
	}
	if t.last != nil {
		if _, err := io.Copy(io.Discard, t.last); err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		t.last = nil
	}
	for {
		hdr := t.pending
		t.pending = nil
		if hdr == nil {
			var err error
			if hdr, err = t.next(); err != nil {
				return ocispec.Descriptor{}, nil, err
			}
		}
		d, ok := blobDigest(hdr.Name)
		if !ok {
			if hdr.Name == FileOCILayout || hdr.Name == FileIndex || hdr.Name == FileBundle || hdr.Name == FileSignature {
				return ocispec.Descriptor{}, nil, t.wrap(hdr.Name, fmt.Errorf("%w: the entry appears twice", ErrUnsafeEntry))
			}
			continue
		}
		desc, err := t.describe(hdr, d)
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		vr, err := NewVerifyReader(t.tr, desc)
		if err != nil {
			return ocispec.Descriptor{}, nil, t.wrap(hdr.Name, err)
		}
		name := hdr.Name
		t.last = entryReader{vr, func(err error) error { return t.wrap(name, err) }}
		return desc, t.last, nil
	}
}

// entryReader names its entry in every error but io.EOF.
type entryReader struct {
	r    io.Reader
	wrap func(error) error
}

func (e entryReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		err = e.wrap(err)
	}
	return n, err
}

// Reopen reads a blob NextBlob has handed out again, from its place in the
// tarball file or split set, verified like the first time: for another
// attempt at an upload whose bytes have already gone by. A compressed
// tarball or standard input cannot be read again: ErrNotReopenable.
func (t *TarReader) Reopen(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if t.section == nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, ErrNotReopenable)
	}
	var off int64
	if m := t.head0(); m != nil && t.offsets != nil {
		if i, ok := m.BlobIndex(desc.Digest); ok {
			off = t.offsets[i]
		}
	}
	if off == 0 {
		return nil, fmt.Errorf("blob %s: %w (not among the blobs read so far)", desc.Digest, ErrBlobNotFound)
	}
	// Errors name the tarball as given, not the volume the stream is in.
	wrap := func(err error) error { return fmt.Errorf("%s: entry %s: %w", t.name, BlobName(desc.Digest), err) }
	rc, err := t.section(off, desc.Size)
	if err != nil {
		return nil, wrap(err)
	}
	vr, err := NewVerifyReader(ctxReader{ctx, rc}, desc)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return readCloser{entryReader{vr, wrap}, rc}, nil
}

// CanReopen reports whether Reopen can read blobs again.
func (t *TarReader) CanReopen() bool { return t.section != nil }

// sparse reports whether an entry's data is stored sparse (PAX GNU.sparse
// records): its bytes in the file are not its content.
func sparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// posReader counts the bytes read through it.
type posReader struct {
	r io.Reader
	n int64
}

func (p *posReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	return n, err
}
