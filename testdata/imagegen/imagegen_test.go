package imagegen

import (
	"encoding/json"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestMirrorShape checks the scale options make what they say: apps spread
// over the repositories with distinct tags, every n-th app multi-arch, and
// the bases shared.
func TestMirrorShape(t *testing.T) {
	set, err := Generate(Options{Apps: 40, LayerSize: 64, Repositories: 20, Bases: 3, MultiArchEvery: 10})
	if err != nil {
		t.Fatal(err)
	}
	repos, refs, indexes := map[string]bool{}, map[string]bool{}, 0
	layerUse := map[string]int{}
	for _, img := range set.Images {
		if img.Repository == "library/base" || img.Repository == "library/multi" || img.Repository == "library/nested" {
			continue
		}
		repos[img.Repository] = true
		if refs[img.Repository+":"+img.Tag] {
			t.Fatalf("%s:%s generated twice", img.Repository, img.Tag)
		}
		refs[img.Repository+":"+img.Tag] = true
		if img.Root.MediaType == ocispec.MediaTypeImageIndex {
			indexes++
		}
		for _, d := range set.Graph[img.Root.Digest] {
			if d.MediaType == ocispec.MediaTypeImageLayerGzip {
				layerUse[d.Digest.String()]++
			}
		}
	}
	if len(repos) != 20 || len(refs) != 40 || indexes != 4 {
		t.Fatalf("%d repositories, %d references, %d indexes; want 20, 40, 4", len(repos), len(refs), indexes)
	}
	shared := 0
	for _, n := range layerUse {
		if n > 1 {
			shared++
		}
	}
	if shared != 3 {
		t.Fatalf("%d layers shared between apps, want the 3 bases", shared)
	}
	var idx ocispec.Index
	for _, img := range set.Images {
		if img.Root.MediaType == ocispec.MediaTypeImageIndex && img.Repository != "library/multi" && img.Repository != "library/nested" {
			if err := json.Unmarshal(set.Blobs[img.Root.Digest], &idx); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if len(idx.Manifests) != 2 || idx.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("multi-arch app index: %+v", idx.Manifests)
	}
}
