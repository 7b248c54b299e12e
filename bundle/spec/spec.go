package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MediaType is the mediaType of ferry.json, format version 1.
const MediaType = "application/vnd.ferry.bundle.v1+json"

// MaxSize caps ferry.json and baselines, which list every blob of a
// registry and so grow with it.
const MaxSize = 64 << 20

// Sentinel errors, wrapped with the file they concern; test with errors.Is.
// Package layout re-exports the first three under the same identity.
var (
	// ErrInvalidDigest: a digest that is malformed or uses an unsupported algorithm.
	ErrInvalidDigest = errors.New("invalid digest")
	// ErrTooLarge: a document larger than ferry is willing to read.
	ErrTooLarge = errors.New("document too large")
	// ErrUnsupported: a media type or format version ferry does not know.
	ErrUnsupported = errors.New("unsupported")
	// ErrInvalid: a ferry.json (or baseline) that does not parse or breaks
	// the format's rules.
	ErrInvalid = errors.New("invalid ferry.json")
)

// ValidateDigest accepts only digests that are safe to use as file names and
// whose algorithm ferry can verify: sha256 and sha512.
func ValidateDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%q: %w: %v", string(d), ErrInvalidDigest, err)
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return nil
	default:
		return fmt.Errorf("%q: %w: algorithm %q is not supported", string(d), ErrInvalidDigest, d.Algorithm())
	}
}

// Manifest is ferry.json: what a bundle carries and what it omits.
// It is also the format of a baseline. See DESIGN.md, "ferry.json".
type Manifest struct {
	MediaType string    `json:"mediaType"`
	Created   time.Time `json:"created"`
	Creator   string    `json:"creator"`
	Images    []Image   `json:"images"`
	// Referrers are the signatures, attestations, SBOMs and other
	// artifacts that refer to the images' manifests (or to each other).
	// A bundle written before referrers existed has none.
	Referrers []Referrer `json:"referrers"`
	Blobs     []Blob     `json:"blobs"`
	// Baselines holds the digest of each baseline file this bundle was
	// planned against; empty for a full bundle.
	Baselines []digest.Digest `json:"baselines"`
}

// Image is one image reference the bundle carries.
type Image struct {
	// Reference is the full source reference, e.g. docker.io/library/alpine:3.20.
	Reference string        `json:"reference"`
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	// Platforms lists the platforms carried, when a selection dropped some;
	// Original is then the digest of the index the source has under the
	// reference (Digest is the narrowed one that travels).
	Platforms []string      `json:"platforms,omitempty"`
	Original  digest.Digest `json:"original,omitempty"`
}

// Referrer is one artifact that refers to a manifest of the bundle: found
// through the OCI 1.1 referrers API or its tag schema (its manifest has a
// subject), or through cosign's tag scheme (sha256-<hex>.sig, .att,
// .sbom; no subject, and Tag says how cosign finds it).
type Referrer struct {
	// Repository is the source repository path (no host) of the subject;
	// the referrer goes wherever its subject goes.
	Repository string `json:"repository"`
	// Subject is the digest of the manifest it refers to.
	Subject digest.Digest `json:"subject"`
	// Descriptor is the referrer's manifest, with its artifactType and
	// annotations.
	Descriptor ocispec.Descriptor `json:"descriptor"`
	// Tag is cosign's tag for it; empty for an OCI 1.1 referrer.
	Tag string `json:"tag,omitempty"`
}

// Blob is one blob of the image graphs: manifests, configs and layers.
type Blob struct {
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	MediaType string        `json:"mediaType"`
	// Repositories lists, in source-path terms (no host), every repository
	// whose images reference the blob.
	Repositories []string `json:"repositories"`
	// Included is false when the blob was left out because a baseline says
	// the destination already holds it, or because it is Foreign.
	Included bool `json:"included"`
	// Foreign is true for a foreign or non-distributable layer (a Windows
	// base layer, say): left out unless the export was asked to include it,
	// and fetched by the runtime from its URLs.
	Foreign bool `json:"foreign,omitempty"`
}

// Sort puts images, blobs and repositories in a stable order, so the same
// bundle always serialises to the same bytes.
func (m *Manifest) Sort() {
	sort.Slice(m.Images, func(i, j int) bool { return m.Images[i].Reference < m.Images[j].Reference })
	sort.Slice(m.Blobs, func(i, j int) bool { return m.Blobs[i].Digest < m.Blobs[j].Digest })
	for i := range m.Blobs {
		sort.Strings(m.Blobs[i].Repositories)
	}
	sort.Slice(m.Baselines, func(i, j int) bool { return m.Baselines[i] < m.Baselines[j] })
	sort.Slice(m.Referrers, func(i, j int) bool {
		a, b := m.Referrers[i], m.Referrers[j]
		if a.Repository != b.Repository {
			return a.Repository < b.Repository
		}
		if a.Subject != b.Subject {
			return a.Subject < b.Subject
		}
		return a.Descriptor.Digest < b.Descriptor.Digest
	})
}

// Blob returns the entry for d, if the bundle lists it.
func (m *Manifest) Blob(d digest.Digest) (Blob, bool) {
	if i, ok := m.BlobIndex(d); ok {
		return m.Blobs[i], true
	}
	return Blob{}, false
}

// Marshal returns the canonical, indented JSON form.
func (m *Manifest) Marshal() ([]byte, error) { return Exactly(m.Encode) }

// Encode writes Marshal's bytes to w a field and a list element at a time,
// the same bytes each time for the same manifest: an exporter encodes
// ferry.json once to size and sign it and once more to write it, and never
// holds it whole. The bytes are those of json.MarshalIndent(m, "", "  "):
// MarshalIndent holds the document three or four times over while it
// works (14 MiB for the 3.5 MiB ferry.json of 3,000 images).
func (m *Manifest) Encode(w io.Writer) error {
	m.Sort()
	if m.Images == nil {
		m.Images = []Image{}
	}
	if m.Blobs == nil {
		m.Blobs = []Blob{}
	}
	if m.Baselines == nil {
		m.Baselines = []digest.Digest{}
	}
	if m.Referrers == nil {
		m.Referrers = []Referrer{}
	}
	for i := range m.Blobs {
		if m.Blobs[i].Repositories == nil {
			m.Blobs[i].Repositories = []string{}
		}
	}
	o := NewIndented(w)
	o.Field("mediaType", m.MediaType)
	o.Field("created", m.Created)
	o.Field("creator", m.Creator)
	o.List("images", len(m.Images), func(i int) any { return m.Images[i] })
	o.List("referrers", len(m.Referrers), func(i int) any { return m.Referrers[i] })
	o.List("blobs", len(m.Blobs), func(i int) any { return m.Blobs[i] })
	o.List("baselines", len(m.Baselines), func(i int) any { return m.Baselines[i] })
	return o.Close()
}

// Count is the number of bytes write writes, none of them kept.
func Count(write func(io.Writer) error) (int64, error) {
	var n countingWriter
	err := write(&n)
	return int64(n), err
}

// Exactly returns what write writes, in a slice of exactly that size:
// write runs twice, counting and then filling, so that a document of tens
// of MiB is not held with a growing buffer's slack beside it.
func Exactly(write func(io.Writer) error) ([]byte, error) {
	n, err := Count(write)
	if err != nil {
		return nil, err
	}
	b := bytes.NewBuffer(make([]byte, 0, int(n)))
	if err := write(b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// Indented writes a JSON object's fields as json.MarshalIndent with a
// two-space indent lays them out, followed by a newline, one field and one
// list element at a time: the whole document is never in memory. Write
// errors are kept and returned by Close.
type Indented struct {
	w      io.Writer
	fields int
	err    error
}

// NewIndented starts an object on w.
func NewIndented(w io.Writer) *Indented {
	o := &Indented{w: w}
	o.write("{")
	return o
}

func (o *Indented) write(s string) {
	if o.err == nil {
		_, o.err = io.WriteString(o.w, s)
	}
}

func (o *Indented) key(name string) {
	if o.fields > 0 {
		o.write(",")
	}
	o.fields++
	o.write("\n  " + strconv.Quote(name) + ": ")
}

func (o *Indented) value(prefix string, v any) {
	data, err := json.MarshalIndent(v, prefix, "  ")
	if err != nil && o.err == nil {
		o.err = err
	}
	if o.err == nil {
		_, o.err = o.w.Write(data)
	}
}

// Field writes one field.
func (o *Indented) Field(name string, v any) {
	o.key(name)
	o.value("  ", v)
}

// List writes a field whose value is a list of n elements, elem(i) each.
func (o *Indented) List(name string, n int, elem func(int) any) {
	o.key(name)
	if n == 0 {
		o.write("[]")
		return
	}
	o.write("[")
	for i := 0; i < n && o.err == nil; i++ {
		if i > 0 {
			o.write(",")
		}
		o.write("\n    ")
		o.value("    ", elem(i))
	}
	o.write("\n  ]")
}

// Close ends the object and returns the first error.
func (o *Indented) Close() error {
	if o.fields == 0 {
		o.write("}\n")
	} else {
		o.write("\n}\n")
	}
	return o.err
}

// Parse reads a ferry.json (or a baseline) of at most MaxSize bytes as a
// stream (decode.go): a value at a time, never the whole text at once.
// name is used in errors. It refuses unknown format versions
// (ErrUnsupported), and, wrapping ErrInvalid, a document that does not
// parse or is not UTF-8, a known key given twice, malformed digests,
// negative sizes and blobs listed twice; it ignores fields it does not
// know. It reads r to its end: a reader teed into a digest has then seen
// every byte.
func Parse(r io.Reader, name string) (*Manifest, error) {
	m, err := decode(r, name)
	if err != nil {
		return nil, err
	}
	if err := m.check(name); err != nil {
		return nil, err
	}
	m.Sort()
	m.clip()
	return m, nil
}

// ParseSum is Parse that also returns the SHA-256 of the bytes read: what
// names a baseline, and what a signature over ferry.json signs.
func ParseSum(r io.Reader, name string) (*Manifest, [sha256.Size]byte, error) {
	h := sha256.New()
	m, err := Parse(io.TeeReader(r, h), name)
	if err != nil {
		return nil, [sha256.Size]byte{}, err
	}
	return m, [sha256.Size]byte(h.Sum(nil)), nil
}

// ParseBytes is Parse of a document already read (and kept, as a signature
// check needs it).
func ParseBytes(data []byte, name string) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", name, ErrTooLarge, MaxSize)
	}
	return Parse(bytes.NewReader(data), name)
}

// check applies the format's rules to a decoded manifest.
func (m *Manifest) check(name string) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", name, ErrInvalid, fmt.Sprintf(format, args...))
	}
	if m.MediaType != MediaType {
		return fmt.Errorf("%s: %w: mediaType %q (this ferry reads %q; a newer bundle needs a newer ferry)", name, ErrUnsupported, m.MediaType, MediaType)
	}
	for _, img := range m.Images {
		if img.Reference == "" {
			return invalid("image with an empty reference")
		}
		if err := ValidateDigest(img.Digest); err != nil {
			return fmt.Errorf("%s: %w: image %s: %w", name, ErrInvalid, img.Reference, err)
		}
	}
	seen := make(map[digest.Digest]bool, len(m.Blobs))
	for _, b := range m.Blobs {
		if err := ValidateDigest(b.Digest); err != nil {
			return fmt.Errorf("%s: %w: blob: %w", name, ErrInvalid, err)
		}
		if b.Size < 0 {
			return invalid("blob %s: negative size %d", b.Digest, b.Size)
		}
		if seen[b.Digest] {
			return invalid("blob %s is listed twice", b.Digest)
		}
		seen[b.Digest] = true
	}
	for _, d := range m.Baselines {
		if err := ValidateDigest(d); err != nil {
			return fmt.Errorf("%s: %w: baseline: %w", name, ErrInvalid, err)
		}
	}
	type key struct {
		repo string
		d    digest.Digest
	}
	seenRef := map[key]bool{}
	for _, r := range m.Referrers {
		if err := ValidateDigest(r.Subject); err != nil {
			return fmt.Errorf("%s: %w: referrer subject: %w", name, ErrInvalid, err)
		}
		if err := ValidateDigest(r.Descriptor.Digest); err != nil {
			return fmt.Errorf("%s: %w: referrer: %w", name, ErrInvalid, err)
		}
		if r.Descriptor.Size < 0 || r.Repository == "" {
			return invalid("referrer %s: negative size or no repository", r.Descriptor.Digest)
		}
		k := key{r.Repository, r.Descriptor.Digest}
		if seenRef[k] {
			return invalid("referrer %s is listed twice for %s", r.Descriptor.Digest, r.Repository)
		}
		seenRef[k] = true
	}
	return nil
}

// strs makes equal strings one: the media types and repositories that
// thousands of entries repeat, and each image's digest with its blob's. A
// ferry.json of tens of thousands of images, kept for a whole import, is
// then held without its repetitions; the decoder interns each entry as it
// goes, so they are never all held at once either.
type strs map[string]string

func (s strs) one(v string) string {
	if c, ok := s[v]; ok {
		return c
	}
	s[v] = v
	return v
}

func (s strs) digest(d digest.Digest) digest.Digest { return digest.Digest(s.one(string(d))) }

func (s strs) blob(b *Blob) {
	b.Digest, b.MediaType = s.digest(b.Digest), s.one(b.MediaType)
	for j, r := range b.Repositories {
		b.Repositories[j] = s.one(r)
	}
}

func (s strs) image(img *Image) {
	img.Digest, img.MediaType = s.digest(img.Digest), s.one(img.MediaType)
}

func (s strs) referrer(r *Referrer) {
	r.Repository, r.Subject = s.one(r.Repository), s.digest(r.Subject)
	r.Descriptor.Digest, r.Descriptor.MediaType = s.digest(r.Descriptor.Digest), s.one(r.Descriptor.MediaType)
	r.Descriptor.ArtifactType = s.one(r.Descriptor.ArtifactType)
}

// clip trims the lists to their length, without the decoder's slack.
func (m *Manifest) clip() {
	m.Images, m.Blobs, m.Referrers = slices.Clip(slices.Clone(m.Images)), slices.Clip(slices.Clone(m.Blobs)), slices.Clip(slices.Clone(m.Referrers))
}

// blobKeys are the keys every blob entry has; a reader that met an entry
// without one would take its zero value (a misspelled "included" reads
// as false: omitted).
var blobKeys = []string{"digest", "size", "included"}

// requireBlobKeys refuses blobs[i], whose text is raw, when it lacks one
// of blobKeys, naming the keys it has that ferry does not know (the
// misspelling, most often). Unknown keys elsewhere are ignored, as the
// format says. (Keys match as the decoder matches them, whatever their
// case.)
func requireBlobKeys(raw []byte, i int) error {
	var has struct{ Digest, Size, Included keySeen }
	if err := json.Unmarshal(raw, &has); err != nil {
		return fmt.Errorf("blobs[%d]: %v", i, err)
	}
	if has.Digest && has.Size && has.Included {
		return nil
	}
	return missingBlobKey(raw, i)
}

// keySeen records that a key was there, whatever its value.
type keySeen bool

func (k *keySeen) UnmarshalJSON([]byte) error {
	*k = true
	return nil
}

// missingBlobKey says which of blobKeys blobs[i] (raw) lacks, and which
// keys it has that ferry does not know.
func missingBlobKey(raw []byte, i int) error {
	var b map[string]json.RawMessage
	if err := json.Unmarshal(raw, &b); err != nil {
		return fmt.Errorf("blobs[%d]: %v", i, err)
	}
	has := map[string]bool{}
	for k := range b {
		has[strings.ToLower(k)] = true
	}
	known := map[string]bool{"digest": true, "size": true, "mediatype": true, "included": true, "repositories": true, "foreign": true}
	for _, k := range blobKeys {
		if has[strings.ToLower(k)] {
			continue
		}
		var unknown []string
		for have := range b {
			if !known[strings.ToLower(have)] {
				unknown = append(unknown, strconv.Quote(have))
			}
		}
		sort.Strings(unknown)
		why := ""
		if len(unknown) > 0 {
			why = " (it has " + strings.Join(unknown, ", ") + ", which ferry does not know: misspelled?)"
		}
		return fmt.Errorf("blobs[%d] has no %q%s", i, k, why)
	}
	return fmt.Errorf("blobs[%d] lacks a key", i)
}

// ReadCapped reads all of r, refusing more than limit bytes with an error
// wrapping ErrTooLarge. Every JSON document ferry reads goes through it.
// What it returns is exactly as long as the document: a caller that keeps
// thousands of them (manifests, a head) keeps no growth slack. It reads in
// chunks and joins them once, so a document of tens of MiB costs twice its
// size while it is read, not the four times a doubling buffer and a copy
// cost; nothing is allocated from a size r claims.
func ReadCapped(r io.Reader, limit int64, name string) ([]byte, error) {
	return ReadCappedHint(r, limit, 0, name)
}

// ReadCappedHint is ReadCapped of a document thought to be about hint
// bytes (a file's size on disk, up to limit): read into one slice of that
// size, it costs its size once.
func ReadCappedHint(r io.Reader, limit, hint int64, name string) ([]byte, error) {
	const chunk = 1 << 20
	var chunks [][]byte
	var n int64
	size := int64(512)
	if hint > 0 {
		size = hint + 1 // one more byte, to see the end
	}
	for {
		if n > limit {
			return nil, fmt.Errorf("%s: %w: more than %d bytes", name, ErrTooLarge, limit)
		}
		buf := make([]byte, min(size, limit+1-n))
		m, err := io.ReadFull(r, buf)
		n += int64(m)
		chunks = append(chunks, buf[:m])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		size = min(size*2, chunk)
	}
	if n > limit {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", name, ErrTooLarge, limit)
	}
	if len(chunks) == 1 && cap(chunks[0]) <= len(chunks[0])+len(chunks[0])/8+1 {
		return chunks[0], nil
	}
	out := make([]byte, 0, n)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out, nil
}
