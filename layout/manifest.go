package layout

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxManifestSize caps a manifest or index: a larger one is refused before a
// byte of it is read. Registries themselves cap manifests at 4 MiB.
// (ferry.json has its own cap, spec.MaxSize.)
const MaxManifestSize = 4 << 20

// MaxIndexSize caps index.json, which has an entry for every image and
// referrer of a bundle: about 300 bytes each, so some 200,000. (It was read
// through MaxManifestSize: a bundle of ~11,000 references exported fine and
// then could not be imported.)
const MaxIndexSize = 64 << 20

// MaxHeadManifests caps the manifests a tarball's head holds in all (they
// are kept in memory to plan from): a few KiB an image, so hundreds of
// thousands of images.
const MaxHeadManifests = 512 << 20

// Docker media types that registries still serve and that ferry carries
// unchanged.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1JWS   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	mediaTypeOCIArtifact        = "application/vnd.oci.artifact.manifest.v1+json"
)

// Media types of layers that are not to be distributed with their image:
// Windows base layers and other licensed content, fetched by the runtime
// from the descriptor's URLs.
const (
	MediaTypeDockerForeignLayer  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mediaTypeOCINondistributable = "application/vnd.oci.image.layer.nondistributable.v1.tar"
)

// IsForeign reports whether a layer is foreign or non-distributable: the
// docker foreign media type, OCI's nondistributable ones, or any descriptor
// with URLs. Registries keep the manifest and not the blob; so does ferry,
// unless asked (--include-foreign).
func IsForeign(d ocispec.Descriptor) bool {
	return len(d.URLs) > 0 || d.MediaType == MediaTypeDockerForeignLayer || strings.HasPrefix(d.MediaType, mediaTypeOCINondistributable)
}

// IsIndex reports whether mediaType is an image index or manifest list.
func IsIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == MediaTypeDockerManifestList
}

// IsManifest reports whether mediaType names a manifest or an index: a node
// of the graph, as opposed to a config or layer blob.
func IsManifest(mediaType string) bool {
	switch mediaType {
	case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest, mediaTypeOCIArtifact:
		return true
	}
	return IsIndex(mediaType)
}

// Fetcher is what reading a graph needs: oras-go's remote repositories and
// ferry's layouts both fit.
type Fetcher interface {
	Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
}

// ReadManifest fetches a manifest or index described by desc, verified
// against it, refusing anything larger than MaxManifestSize.
func ReadManifest(ctx context.Context, f Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	if err := ValidateDescriptor(desc); err != nil {
		return nil, err
	}
	if desc.Size > MaxManifestSize {
		return nil, fmt.Errorf("manifest %s: %w: %d bytes, limit %d", desc.Digest, ErrTooLarge, desc.Size, MaxManifestSize)
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	vr, err := NewVerifyReader(rc, desc)
	if err != nil {
		return nil, err
	}
	data, err := readVerified(vr, desc.Size)
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", desc.Digest, err)
	}
	return data, nil
}

// readVerified reads the size bytes of a verify reader into a slice of
// exactly that size (a graph keeps thousands of manifests), and reads on to
// its end, where the digest is checked.
func readVerified(vr io.Reader, size int64) ([]byte, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(vr, data); err != nil {
		return nil, err
	}
	if n, err := vr.Read(make([]byte, 1)); n > 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("%w: more bytes than the descriptor's %d", ErrSizeMismatch, size)
		}
		return nil, err
	}
	return data, nil
}

// manifestFields is the union of the fields of an image manifest, an image
// index and their Docker equivalents that matter for walking the graph.
type manifestFields struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Blobs         []ocispec.Descriptor `json:"blobs"` // OCI artifact manifest (withdrawn, still seen)
}

// Children parses a manifest or index and returns the descriptors it points
// to: the manifests of an index; the config and layers of a manifest. A
// subject is not followed: it points back at an image, not into it.
//
// It refuses documents whose mediaType disagrees with desc, Docker schema 1,
// and children with malformed digests or negative sizes.
func Children(desc ocispec.Descriptor, data []byte) ([]ocispec.Descriptor, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("manifest %s: %w: %s", desc.Digest, ErrInvalidManifest, fmt.Sprintf(format, args...))
	}
	switch desc.MediaType {
	case mediaTypeDockerSchema1, mediaTypeDockerSchema1JWS:
		return nil, fmt.Errorf("manifest %s: %w: Docker schema 1 manifests are deprecated and cannot be carried; convert the image first", desc.Digest, ErrUnsupported)
	}
	if !IsManifest(desc.MediaType) {
		return nil, fail("media type %q is not a manifest or index", desc.MediaType)
	}
	var m manifestFields
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fail("%v", err)
	}
	if m.MediaType != "" && m.MediaType != desc.MediaType {
		return nil, fail("document says mediaType %q, its descriptor says %q", m.MediaType, desc.MediaType)
	}
	var children []ocispec.Descriptor
	if IsIndex(desc.MediaType) {
		if m.Config != nil || len(m.Layers) > 0 {
			return nil, fail("an index must not have a config or layers")
		}
		children = m.Manifests
	} else {
		if len(m.Manifests) > 0 {
			return nil, fail("a manifest must not list manifests")
		}
		// Exactly as long as needed: a graph keeps thousands of these.
		children = make([]ocispec.Descriptor, 0, 1+len(m.Layers)+len(m.Blobs))
		if desc.MediaType != mediaTypeOCIArtifact {
			if m.Config == nil {
				return nil, fail("no config")
			}
			children = append(children, *m.Config)
		}
		children = append(children, m.Layers...)
		children = append(children, m.Blobs...)
	}
	for i, c := range children {
		if err := ValidateDescriptor(c); err != nil {
			return nil, fail("child %d: %v", i, err)
		}
		if c.MediaType == "" {
			return nil, fail("child %s has no mediaType", c.Digest)
		}
		if IsIndex(desc.MediaType) && !IsManifest(c.MediaType) {
			return nil, fail("index entry %s has media type %q, not a manifest", c.Digest, c.MediaType)
		}
	}
	return children, nil
}
