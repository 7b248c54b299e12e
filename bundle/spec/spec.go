package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

// IsReferrer reports whether d is the manifest of a referrer the bundle
// lists.
func (m *Manifest) IsReferrer(d digest.Digest) bool {
	for _, r := range m.Referrers {
		if r.Descriptor.Digest == d {
			return true
		}
	}
	return false
}

// Blob returns the entry for d, if the bundle lists it.
func (m *Manifest) Blob(d digest.Digest) (Blob, bool) {
	i := sort.Search(len(m.Blobs), func(i int) bool { return m.Blobs[i].Digest >= d })
	if i < len(m.Blobs) && m.Blobs[i].Digest == d {
		return m.Blobs[i], true
	}
	return Blob{}, false
}

// Marshal returns the canonical, indented JSON form.
func (m *Manifest) Marshal() ([]byte, error) {
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
	// The bytes are those of json.MarshalIndent(m, "", "  "), written a
	// field and a list element at a time: MarshalIndent holds the document
	// three or four times over while it works (14 MiB for the 3.5 MiB
	// ferry.json of 3,000 images, at the moment export's heap is largest).
	var b bytes.Buffer
	b.WriteString("{")
	w := indentedWriter{b: &b}
	w.field("mediaType", m.MediaType)
	w.field("created", m.Created)
	w.field("creator", m.Creator)
	w.list("images", len(m.Images), func(i int) any { return m.Images[i] })
	w.list("referrers", len(m.Referrers), func(i int) any { return m.Referrers[i] })
	w.list("blobs", len(m.Blobs), func(i int) any { return m.Blobs[i] })
	w.list("baselines", len(m.Baselines), func(i int) any { return m.Baselines[i] })
	if w.err != nil {
		return nil, w.err
	}
	b.WriteString("\n}\n")
	return b.Bytes(), nil
}

// indentedWriter writes the fields of a JSON object as MarshalIndent with
// a two-space indent lays them out, one value at a time.
type indentedWriter struct {
	b      *bytes.Buffer
	fields int
	err    error
}

func (w *indentedWriter) key(name string) {
	if w.fields > 0 {
		w.b.WriteString(",")
	}
	w.fields++
	fmt.Fprintf(w.b, "\n  %q: ", name)
}

func (w *indentedWriter) value(prefix string, v any) {
	data, err := json.MarshalIndent(v, prefix, "  ")
	if err != nil && w.err == nil {
		w.err = err
	}
	w.b.Write(data)
}

func (w *indentedWriter) field(name string, v any) {
	w.key(name)
	w.value("  ", v)
}

func (w *indentedWriter) list(name string, n int, elem func(int) any) {
	w.key(name)
	if n == 0 {
		w.b.WriteString("[]")
		return
	}
	w.b.WriteString("[")
	for i := 0; i < n; i++ {
		if i > 0 {
			w.b.WriteString(",")
		}
		w.b.WriteString("\n    ")
		w.value("    ", elem(i))
	}
	w.b.WriteString("\n  ]")
}

// Parse reads a ferry.json (or a baseline) of at most MaxSize bytes. name
// is used in errors. It refuses unknown format versions (ErrUnsupported),
// and, wrapping ErrInvalid, a document that does not parse, malformed
// digests, negative sizes and blobs listed twice; it ignores fields it does
// not know.
func Parse(r io.Reader, name string) (*Manifest, error) {
	data, err := ReadCapped(r, MaxSize, name)
	if err != nil {
		return nil, err
	}
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", name, ErrInvalid, fmt.Sprintf(format, args...))
	}
	if !utf8.Valid(data) {
		return nil, invalid("not valid UTF-8")
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, invalid("does not parse: %v", err)
	}
	if err := requireBlobKeys(data); err != nil {
		return nil, invalid("%v", err)
	}
	if m.MediaType != MediaType {
		return nil, fmt.Errorf("%s: %w: mediaType %q (this ferry reads %q; a newer bundle needs a newer ferry)", name, ErrUnsupported, m.MediaType, MediaType)
	}
	for _, img := range m.Images {
		if img.Reference == "" {
			return nil, invalid("image with an empty reference")
		}
		if err := ValidateDigest(img.Digest); err != nil {
			return nil, fmt.Errorf("%s: %w: image %s: %w", name, ErrInvalid, img.Reference, err)
		}
	}
	seen := make(map[digest.Digest]bool, len(m.Blobs))
	for _, b := range m.Blobs {
		if err := ValidateDigest(b.Digest); err != nil {
			return nil, fmt.Errorf("%s: %w: blob: %w", name, ErrInvalid, err)
		}
		if b.Size < 0 {
			return nil, invalid("blob %s: negative size %d", b.Digest, b.Size)
		}
		if seen[b.Digest] {
			return nil, invalid("blob %s is listed twice", b.Digest)
		}
		seen[b.Digest] = true
	}
	for _, d := range m.Baselines {
		if err := ValidateDigest(d); err != nil {
			return nil, fmt.Errorf("%s: %w: baseline: %w", name, ErrInvalid, err)
		}
	}
	type key struct {
		repo string
		d    digest.Digest
	}
	seenRef := map[key]bool{}
	for _, r := range m.Referrers {
		if err := ValidateDigest(r.Subject); err != nil {
			return nil, fmt.Errorf("%s: %w: referrer subject: %w", name, ErrInvalid, err)
		}
		if err := ValidateDigest(r.Descriptor.Digest); err != nil {
			return nil, fmt.Errorf("%s: %w: referrer: %w", name, ErrInvalid, err)
		}
		if r.Descriptor.Size < 0 || r.Repository == "" {
			return nil, invalid("referrer %s: negative size or no repository", r.Descriptor.Digest)
		}
		k := key{r.Repository, r.Descriptor.Digest}
		if seenRef[k] {
			return nil, invalid("referrer %s is listed twice for %s", r.Descriptor.Digest, r.Repository)
		}
		seenRef[k] = true
	}
	m.Sort()
	return &m, nil
}

// blobKeys are the keys every blob entry has; a reader that met an entry
// without one would take its zero value (a misspelled "included" reads
// as false: omitted).
var blobKeys = []string{"digest", "size", "included"}

// requireBlobKeys refuses a blob entry that lacks one of blobKeys, naming
// the keys it has that ferry does not know (the misspelling, most often).
// Unknown keys elsewhere are ignored, as the format says.
func requireBlobKeys(data []byte) error {
	var raw struct {
		Blobs []map[string]json.RawMessage `json:"blobs"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	known := map[string]bool{"digest": true, "size": true, "mediaType": true, "included": true, "repositories": true, "foreign": true}
	for i, b := range raw.Blobs {
		for _, k := range blobKeys {
			if _, ok := b[k]; ok {
				continue
			}
			var unknown []string
			for have := range b {
				if !known[have] {
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
	}
	return nil
}

// ReadCapped reads all of r, refusing more than limit bytes with an error
// wrapping ErrTooLarge. Every JSON document ferry reads goes through it.
// What it returns is exactly as long as the document: a caller that keeps
// thousands of them (manifests, a head) keeps no growth slack.
func ReadCapped(r io.Reader, limit int64, name string) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", name, ErrTooLarge, limit)
	}
	if data := buf.Bytes(); cap(data) > len(data)+len(data)/8 {
		return bytes.Clone(data), nil
	}
	return buf.Bytes(), nil
}
