package bundle

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle/spec"
)

// A pair is in the set only in the repository it was added to, whether
// ferry.json lists its digest or not.
func TestPairSet(t *testing.T) {
	t.Parallel()
	listed, other := digest.FromString("listed"), digest.FromString("not in ferry.json")
	m := &spec.Manifest{Blobs: []spec.Blob{{Digest: digest.FromString("first")}, {Digest: listed}}}
	m.Sort()
	for _, man := range []*spec.Manifest{m, nil} {
		s := newPairSet(man)
		s.add(inRepo{"a/app", listed})
		s.add(inRepo{"b/app", other})
		for p, want := range map[inRepo]bool{
			{"a/app", listed}: true, {"b/app", listed}: false, {"c/app", listed}: false,
			{"b/app", other}: true, {"a/app", other}: false, {"a/app", digest.FromString("first")}: false,
		} {
			if s.has(p) != want {
				t.Errorf("manifest %v: has(%v) = %v, want %v", man != nil, p, !want, want)
			}
		}
	}
	var none *pairSet
	if none.has(inRepo{"a/app", listed}) {
		t.Error("a nil set holds something")
	}
}

// Pairs added in any order, some twice, are all found once the set is
// read, in their repositories only; the set is read concurrently.
func TestPairSetManyPairs(t *testing.T) {
	t.Parallel()
	m := &spec.Manifest{}
	for i := range 200 {
		m.Blobs = append(m.Blobs, spec.Blob{Digest: digest.FromString(fmt.Sprint(i))})
	}
	m.Sort()
	s := newPairSet(m)
	for i := 199; i >= 0; i-- {
		for _, repo := range []string{fmt.Sprint("r", i%7), fmt.Sprint("r", i%7)} {
			s.add(inRepo{repo, digest.FromString(fmt.Sprint(i))})
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 200 {
				d := digest.FromString(fmt.Sprint(i))
				if !s.has(inRepo{fmt.Sprint("r", i%7), d}) || s.has(inRepo{fmt.Sprint("r", (i+1)%7), d}) {
					t.Errorf("blob %d: not in its repository r%d only", i, i%7)
				}
			}
		})
	}
	wg.Wait()
	defer func() {
		if recover() == nil {
			t.Error("an add after the set was read was taken, where the sorted list would miss it")
		}
	}()
	s.add(inRepo{"r0", digest.FromString("0")})
}

// Each repository receives its images' graphs and then its referrers',
// each descriptor once and children first, whatever the order in which its
// images come among others'; repositories come in the order of their first
// image, and a referrer whose repository has no image is left out.
func TestGroupByRepository(t *testing.T) {
	t.Parallel()
	desc := func(name string) *ocispec.Descriptor {
		return &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString(name)}
	}
	base, appA, rootA1, rootA2, appB, rootB, sig, stray := desc("base"), desc("a"), desc("a1"), desc("a2"), desc("b"), desc("b1"), desc("sig"), desc("stray")
	target := func(repo string, graph ...*ocispec.Descriptor) Target {
		return Target{Dest: Reference{Repository: repo, Tag: "t"}, Graph: graph}
	}
	targets := []Target{
		target("x/a", base, appA, rootA1),
		target("x/b", base, appB, rootB),
		target("x/a", base, appA, rootA2),
	}
	referrers := []TargetReferrer{
		{Dest: Reference{Repository: "x/elsewhere"}, Graph: []*ocispec.Descriptor{stray}},
		{Dest: Reference{Repository: "x/a"}, Graph: []*ocispec.Descriptor{rootA1, sig}},
	}
	got := groupByRepository(targets, referrers)
	want := []struct {
		name  string
		descs []*ocispec.Descriptor
	}{
		{"x/a", []*ocispec.Descriptor{base, appA, rootA1, rootA2, sig}},
		{"x/b", []*ocispec.Descriptor{base, appB, rootB}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d repositories, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].name != w.name || !slices.Equal(got[i].descs, w.descs) {
			t.Errorf("repository %d: %s %v, want %s %v", i, got[i].name, got[i].descs, w.name, w.descs)
		}
	}
}

// bucketed keeps each group's items in their order and leaves out those
// of no group.
func TestBucketed(t *testing.T) {
	t.Parallel()
	groups := []int{2, 0, -1, 2, 0, 1}
	order, start := bucketed(3, len(groups), func(k int) int { return groups[k] })
	if want := []int32{1, 4, 5, 0, 3}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if want := []int32{0, 2, 3, 5}; !slices.Equal(start, want) {
		t.Errorf("start %v, want %v", start, want)
	}
}

// A pair index finds every pair of a digest, in their order, and none of a
// digest no pair has.
func TestPairIndex(t *testing.T) {
	t.Parallel()
	a, b := &ocispec.Descriptor{Digest: digest.FromString("a")}, &ocispec.Descriptor{Digest: digest.FromString("b")}
	pairs := []RepoBlob{{"x/2", b}, {"x/1", a}, {"x/3", b}, {"x/0", a}, {"x/1", b}}
	x := newPairIndex(pairs)
	for d, want := range map[digest.Digest][]RepoBlob{
		a.Digest:                {{"x/1", a}, {"x/0", a}},
		b.Digest:                {{"x/2", b}, {"x/3", b}, {"x/1", b}},
		digest.FromString("no"): nil,
	} {
		if got := x.of(d); !slices.Equal(got, want) {
			t.Errorf("pairs of %s: %v, want %v", d, got, want)
		}
	}
}
