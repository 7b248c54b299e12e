package layout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"
)

// MediaTypeBundle is the mediaType of ferry.json, format version 1.
const MediaTypeBundle = "application/vnd.ferry.bundle.v1+json"

// File names at the root of a bundle.
const (
	FileOCILayout = "oci-layout"
	FileIndex     = "index.json"
	FileBundle    = "ferry.json"
)

// BundleManifest is ferry.json: what a bundle carries and what it omits.
// It is also the format of a baseline. See DESIGN.md, "ferry.json".
type BundleManifest struct {
	MediaType string        `json:"mediaType"`
	Created   time.Time     `json:"created"`
	Creator   string        `json:"creator"`
	Images    []BundleImage `json:"images"`
	Blobs     []BundleBlob  `json:"blobs"`
	// Baselines holds the digest of each baseline file this bundle was
	// planned against; empty for a full bundle.
	Baselines []digest.Digest `json:"baselines"`
}

// BundleImage is one image reference the bundle carries.
type BundleImage struct {
	// Reference is the full source reference, e.g. docker.io/library/alpine:3.20.
	Reference string        `json:"reference"`
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
}

// BundleBlob is one blob of the image graphs: manifests, configs and layers.
type BundleBlob struct {
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	MediaType string        `json:"mediaType"`
	// Repositories lists, in source-path terms (no host), every repository
	// whose images reference the blob.
	Repositories []string `json:"repositories"`
	// Included is false when the blob was left out because a baseline says
	// the destination already holds it.
	Included bool `json:"included"`
}

// Sort puts images, blobs and repositories in a stable order, so the same
// bundle always serialises to the same bytes.
func (m *BundleManifest) Sort() {
	sort.Slice(m.Images, func(i, j int) bool { return m.Images[i].Reference < m.Images[j].Reference })
	sort.Slice(m.Blobs, func(i, j int) bool { return m.Blobs[i].Digest < m.Blobs[j].Digest })
	for i := range m.Blobs {
		sort.Strings(m.Blobs[i].Repositories)
	}
	sort.Slice(m.Baselines, func(i, j int) bool { return m.Baselines[i] < m.Baselines[j] })
}

// Blob returns the entry for d, if the bundle lists it.
func (m *BundleManifest) Blob(d digest.Digest) (BundleBlob, bool) {
	i := sort.Search(len(m.Blobs), func(i int) bool { return m.Blobs[i].Digest >= d })
	if i < len(m.Blobs) && m.Blobs[i].Digest == d {
		return m.Blobs[i], true
	}
	return BundleBlob{}, false
}

// Marshal returns the canonical, indented JSON form.
func (m *BundleManifest) Marshal() ([]byte, error) {
	m.Sort()
	if m.Images == nil {
		m.Images = []BundleImage{}
	}
	if m.Blobs == nil {
		m.Blobs = []BundleBlob{}
	}
	if m.Baselines == nil {
		m.Baselines = []digest.Digest{}
	}
	for i := range m.Blobs {
		if m.Blobs[i].Repositories == nil {
			m.Blobs[i].Repositories = []string{}
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseBundleManifest reads a ferry.json (or a baseline) of at most
// MaxMetadataSize bytes. name is used in errors. It refuses unknown format
// versions, malformed digests, negative sizes and blobs listed twice; it
// ignores fields it does not know.
func ParseBundleManifest(r io.Reader, name string) (*BundleManifest, error) {
	data, err := readCapped(r, MaxMetadataSize, name)
	if err != nil {
		return nil, err
	}
	var m BundleManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: not a ferry bundle manifest: %w", name, err)
	}
	if m.MediaType != MediaTypeBundle {
		return nil, fmt.Errorf("%s: %w: mediaType %q (this ferry reads %q; a newer bundle needs a newer ferry)", name, ErrUnsupported, m.MediaType, MediaTypeBundle)
	}
	for _, img := range m.Images {
		if img.Reference == "" {
			return nil, fmt.Errorf("%s: image with an empty reference", name)
		}
		if err := ValidateDigest(img.Digest); err != nil {
			return nil, fmt.Errorf("%s: image %s: %w", name, img.Reference, err)
		}
	}
	seen := make(map[digest.Digest]bool, len(m.Blobs))
	for _, b := range m.Blobs {
		if err := ValidateDigest(b.Digest); err != nil {
			return nil, fmt.Errorf("%s: blob: %w", name, err)
		}
		if b.Size < 0 {
			return nil, fmt.Errorf("%s: blob %s: negative size %d", name, b.Digest, b.Size)
		}
		if seen[b.Digest] {
			return nil, fmt.Errorf("%s: blob %s is listed twice", name, b.Digest)
		}
		seen[b.Digest] = true
	}
	for _, d := range m.Baselines {
		if err := ValidateDigest(d); err != nil {
			return nil, fmt.Errorf("%s: baseline: %w", name, err)
		}
	}
	m.Sort()
	return &m, nil
}

// readCapped reads all of r, refusing more than limit bytes.
func readCapped(r io.Reader, limit int64, name string) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", name, ErrTooLarge, limit)
	}
	return buf.Bytes(), nil
}
