package bundle

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestCollectBlobs: each blob once, sorted by digest, sharing the graph's
// descriptor; each repository that uses it once and in order, however the
// images and referrers interleave; sources aligned with the repositories;
// and every list exactly as long as it needs (the plan keeps them).
func TestCollectBlobs(t *testing.T) {
	t.Parallel()
	desc := func(mt, s string) *ocispec.Descriptor {
		return &ocispec.Descriptor{MediaType: mt, Digest: digest.FromString(s), Size: int64(len(s))}
	}
	base := desc(ocispec.MediaTypeImageLayerGzip, "base")
	var images []PlannedImage
	// Repositories interleaved, a repository met again after others, on a
	// second registry too: c then a, b, a, c, ...
	repos := []string{"team/c", "team/a", "team/b"}
	for i := range 30 {
		repo := repos[i%3]
		if i%5 == 0 {
			repo = "team/a"
		}
		registry := "r.example"
		if repo == "team/b" {
			registry = "mirror.example"
		}
		config, root := desc(ocispec.MediaTypeImageConfig, fmt.Sprint("config ", i)), desc(ocispec.MediaTypeImageManifest, fmt.Sprint("image ", i))
		images = append(images, PlannedImage{Source: Reference{Registry: registry, Repository: repo, Tag: fmt.Sprint(i)}, Root: *root, Graph: []*ocispec.Descriptor{config, base, root}})
	}
	sig := desc(ocispec.MediaTypeImageManifest, "signature")
	referrers := []PlannedReferrer{
		// The base layer again, in a repository that has it and in one that has not.
		{Source: Reference{Registry: "r.example", Repository: "team/a"}, Desc: *sig, Graph: []*ocispec.Descriptor{base, sig}},
		{Source: Reference{Registry: "r.example", Repository: "team/d"}, Desc: *sig, Graph: []*ocispec.Descriptor{base, sig}},
	}
	got := collectBlobs(images, referrers)
	if want := 30*2 + 2; len(got) != want || cap(got) != want {
		t.Fatalf("%d blobs (capacity %d), want %d, exactly", len(got), cap(got), want)
	}
	if !slices.IsSortedFunc(got, func(a, b PlannedBlob) int { return cmp.Compare(a.Desc.Digest, b.Desc.Digest) }) {
		t.Fatal("blobs not sorted by digest")
	}
	byDigest := map[digest.Digest]PlannedBlob{}
	for _, b := range got {
		if _, dup := byDigest[b.Desc.Digest]; dup {
			t.Fatalf("%s listed twice", b.Desc.Digest)
		}
		byDigest[b.Desc.Digest] = b
		if len(b.sources) != len(b.Repositories) || cap(b.sources) != len(b.sources) || cap(b.Repositories) != len(b.Repositories) {
			t.Fatalf("%s: %d sources (cap %d) for %d repositories (cap %d)", b.Desc.Digest, len(b.sources), cap(b.sources), len(b.Repositories), cap(b.Repositories))
		}
		for j, s := range b.sources {
			if s.repository != b.Repositories[j] {
				t.Fatalf("%s: source %d is %s, repository %d is %s", b.Desc.Digest, j, s.repository, j, b.Repositories[j])
			}
			if want := map[bool]string{true: "mirror.example", false: "r.example"}[s.repository == "team/b"]; s.registry != want {
				t.Fatalf("%s: %s from registry %s, want %s", b.Desc.Digest, s.repository, s.registry, want)
			}
		}
		if !b.Included || b.Foreign {
			t.Fatalf("%s: included %v, foreign %v", b.Desc.Digest, b.Included, b.Foreign)
		}
	}
	shared := byDigest[base.Digest]
	if shared.Desc != base {
		t.Fatal("the blob's descriptor is a copy, not the graph's")
	}
	if want := []string{"team/a", "team/b", "team/c", "team/d"}; !slices.Equal(shared.Repositories, want) {
		t.Fatalf("base layer used in %v, want %v", shared.Repositories, want)
	}
	if want := []string{"team/a", "team/d"}; !slices.Equal(byDigest[sig.Digest].Repositories, want) {
		t.Fatalf("signature in %v, want %v", byDigest[sig.Digest].Repositories, want)
	}
	for i, img := range images {
		if b := byDigest[img.Root.Digest]; !slices.Equal(b.Repositories, []string{img.Source.Repository}) {
			t.Fatalf("image %d: in %v, want [%s]", i, b.Repositories, img.Source.Repository)
		}
	}
}

// TestCountDistinct: a blob every repository receives counts once, with its
// bytes once, whichever copy of its descriptor each repository holds.
func TestCountDistinct(t *testing.T) {
	t.Parallel()
	desc := func(s string) *ocispec.Descriptor {
		return &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(s), Size: int64(len(s))}
	}
	var repos []repoGraph
	for i := range 100 {
		repos = append(repos, repoGraph{name: fmt.Sprint("team/app", i), descs: []*ocispec.Descriptor{desc("shared base"), desc(fmt.Sprint("own ", i))}})
	}
	n, size := countDistinct(repos)
	var want int64 = int64(len("shared base"))
	for i := range 100 {
		want += int64(len(fmt.Sprint("own ", i)))
	}
	if n != 101 || size != want {
		t.Fatalf("counted %d blobs of %d bytes, want 101 of %d", n, size, want)
	}
	if n, size := countDistinct(nil); n != 0 || size != 0 {
		t.Fatalf("nothing counted as %d blobs of %d bytes", n, size)
	}
}

// TestGroupByDigest: every pair in exactly one group, a group a digest,
// in the pairs' order within it, the largest blob first; total counts
// each blob once.
func TestGroupByDigest(t *testing.T) {
	t.Parallel()
	blob := func(s string) *ocispec.Descriptor {
		return &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(s), Size: int64(len(s))}
	}
	base, app := blob("a shared base layer"), blob("app")
	var missing []RepoBlob
	for i := range 50 {
		missing = append(missing, RepoBlob{Repository: fmt.Sprint("team/r", i), Desc: base}, RepoBlob{Repository: fmt.Sprint("team/r", i), Desc: blob(fmt.Sprint("own layer ", i))})
		if i%10 == 0 {
			missing = append(missing, RepoBlob{Repository: fmt.Sprint("team/r", i), Desc: app})
		}
	}
	groups, total := groupByDigest(missing)
	if len(groups) != 52 {
		t.Fatalf("%d groups, want 52 (one a digest)", len(groups))
	}
	if groups[0][0] != 0 || len(groups[0]) != 50 {
		t.Fatalf("first group: %v, want the base layer (largest), in all 50 repositories, starting with the first pair", groups[0])
	}
	seen := map[int32]bool{}
	var want int64
	for gi, g := range groups {
		d := missing[g[0]].Desc
		want += d.Size
		if gi > 0 && missing[groups[gi-1][0]].Desc.Size < d.Size {
			t.Fatalf("group %d (%d bytes) after a smaller one", gi, d.Size)
		}
		for j, i := range g {
			if missing[i].Desc.Digest != d.Digest || seen[i] || (j > 0 && g[j-1] > i) {
				t.Fatalf("group %d: pair %d misplaced or repeated: %v", gi, i, g)
			}
			seen[i] = true
		}
	}
	if len(seen) != len(missing) || total != want {
		t.Fatalf("%d of %d pairs grouped, %d bytes counted, want %d", len(seen), len(missing), total, want)
	}
}
