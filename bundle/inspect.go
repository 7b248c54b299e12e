package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/verify"
)

// Inspection describes a bundle without hashing its blobs.
type Inspection struct {
	// Manifest is ferry.json; nil for a plain OCI layout.
	Manifest *spec.Manifest
	Images   []InspectedImage
	// Blobs counts distinct blobs; Included those in the bundle, Omitted
	// those a baseline left out.
	Blobs, Included, Omitted int
	Bytes, IncludedBytes     int64
}

// InspectedImage is one image of a bundle.
type InspectedImage struct {
	Reference string
	Digest    digest.Digest
	MediaType string
	// Platforms lists os/arch[/variant] of every manifest below the root.
	Platforms []string
	// Referrers are what refers to the image's manifests (and to those),
	// as ferry.json lists them.
	Referrers []spec.Referrer
	Blobs     int
	Bytes     int64
}

// Inspect reads a bundle's index.json, ferry.json and manifests (verified)
// and reports its images, platforms, blob count and bytes.
func Inspect(ctx context.Context, path string) (*Inspection, error) {
	ins, err := inspect(ctx, path)
	return ins, verify.Invalid(err)
}

func inspect(ctx context.Context, path string) (*Inspection, error) {
	b, err := layout.Open(path)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if tr, ok := b.(*layout.TarReader); ok {
		return inspectTar(ctx, tr)
	}
	dir := b.(*layout.Dir)
	idx, err := dir.Index()
	if err != nil {
		return nil, err
	}
	ins := &Inspection{}
	if m, err := dir.BundleManifest(); err == nil {
		ins.Manifest = m
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return ins, ins.describe(ctx, idx, dir, dir)
}

// inspectTar reads a tarball's head and the configs that follow it; it
// stops before the first layer.
func inspectTar(ctx context.Context, tr *layout.TarReader) (*Inspection, error) {
	head, err := tr.ReadHead()
	if err != nil {
		return nil, err
	}
	configs := configStore{}
	for {
		desc, r, err := tr.NextBlob()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if desc.Size > layout.MaxManifestSize || !isConfigType(desc.MediaType) {
			break
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		configs[desc.Digest] = data
	}
	ins := &Inspection{Manifest: head.Manifest}
	return ins, ins.describe(ctx, head.Index, head, configs)
}

func isConfigType(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageConfig || mediaType == "application/vnd.docker.container.image.v1+json"
}

// configStore serves configs read from a stream.
type configStore map[digest.Digest][]byte

func (c configStore) Fetch(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	data, ok := c[d.Digest]
	if !ok {
		return nil, layout.ErrBlobNotFound
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// describe fills in the images and counts from index.json, reading
// manifests through manifests and configs through configs.
func (ins *Inspection) describe(ctx context.Context, idx *ocispec.Index, manifests, configs layout.Fetcher) error {
	graph := layout.NewGraph()
	all := map[digest.Digest]ocispec.Descriptor{}
	var bySubject map[digest.Digest][]int
	if ins.Manifest != nil {
		bySubject = indexReferrers(ins.Manifest.Referrers)
	}
	for _, root := range idx.Manifests {
		referrer := root.Annotations[layout.AnnotationReferrerSubject] != ""
		img := InspectedImage{Reference: verify.RefName(root), Digest: root.Digest, MediaType: root.MediaType}
		descs, err := graph.Walk(ctx, manifests, root)
		if err != nil {
			return fmt.Errorf("image %s: %w", img.Reference, err)
		}
		for _, d := range descs {
			img.Blobs++
			img.Bytes += d.Size
			all[d.Digest] = *d
		}
		if referrer {
			continue // listed under the image it refers to
		}
		img.Platforms = platforms(ctx, configs, graph, root, descs)
		if ins.Manifest != nil {
			img.Referrers = referrersOf(descs, ins.Manifest.Referrers, bySubject)
		}
		ins.Images = append(ins.Images, img)
	}
	for _, d := range all {
		ins.Blobs++
		ins.Bytes += d.Size
		included := true
		if ins.Manifest != nil {
			if b, ok := ins.Manifest.Blob(d.Digest); ok {
				included = b.Included
			}
		}
		if included {
			ins.Included++
			ins.IncludedBytes += d.Size
		} else {
			ins.Omitted++
		}
	}
	return nil
}

// platforms lists the platforms of an image: those its indexes name, or,
// for a single manifest, the one its config names (when the bundle has it).
func platforms(ctx context.Context, configs layout.Fetcher, graph *layout.Graph, root ocispec.Descriptor, descs []*ocispec.Descriptor) []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range descs {
		if !layout.IsIndex(d.MediaType) {
			continue
		}
		data, _ := graph.Manifest(d.Digest)
		var idx ocispec.Index
		if json.Unmarshal(data, &idx) != nil {
			continue
		}
		for _, m := range idx.Manifests {
			if m.Platform != nil && !layout.IsIndex(m.MediaType) && !seen[formatPlatform(*m.Platform)] {
				seen[formatPlatform(*m.Platform)] = true
				out = append(out, formatPlatform(*m.Platform))
			}
		}
	}
	if len(out) > 0 || layout.IsIndex(root.MediaType) {
		return out
	}
	data, _ := graph.Manifest(root.Digest)
	var man ocispec.Manifest
	if json.Unmarshal(data, &man) != nil {
		return nil
	}
	cfg, err := layout.ReadManifest(ctx, configs, man.Config)
	if err != nil {
		return []string{"platform unknown: config not in this bundle"}
	}
	var image ocispec.Image
	if json.Unmarshal(cfg, &image) != nil || image.OS == "" {
		return []string{"unknown"}
	}
	return []string{formatPlatform(image.Platform)}
}

func formatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
