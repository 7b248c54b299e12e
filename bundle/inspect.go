package bundle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/layout"
)

// Inspection describes a bundle without hashing its blobs.
type Inspection struct {
	// Manifest is ferry.json; nil for a plain OCI layout.
	Manifest *layout.BundleManifest
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
	Blobs     int
	Bytes     int64
}

// Inspect reads a bundle's index.json, ferry.json and manifests (verified)
// and reports its images, platforms, blob count and bytes.
func Inspect(ctx context.Context, path string) (*Inspection, error) {
	dir, err := layout.OpenDir(path)
	if err != nil {
		return nil, err
	}
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
	graph := layout.NewGraph()
	all := map[digest.Digest]ocispec.Descriptor{}
	for _, root := range idx.Manifests {
		img := InspectedImage{Reference: root.Annotations[AnnotationRefName], Digest: root.Digest, MediaType: root.MediaType}
		if img.Reference == "" {
			img.Reference = root.Digest.String()
		}
		descs, err := graph.Walk(ctx, dir, root)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Reference, err)
		}
		for _, d := range descs {
			img.Blobs++
			img.Bytes += d.Size
			all[d.Digest] = d
		}
		img.Platforms = platforms(ctx, dir, graph, root, descs)
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
	return ins, nil
}

// platforms lists the platforms of an image: those its indexes name, or,
// for a single manifest, the one its config names (when the bundle has it).
func platforms(ctx context.Context, dir *layout.Dir, graph *layout.Graph, root ocispec.Descriptor, descs []ocispec.Descriptor) []string {
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
	if ok, _ := dir.Exists(man.Config); !ok {
		return []string{"platform unknown: config omitted"}
	}
	cfg, err := layout.ReadManifest(ctx, dir, man.Config)
	if err != nil {
		return []string{"unknown"}
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
