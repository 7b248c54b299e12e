package bundle

import (
	"testing"

	"github.com/opencontainers/go-digest"

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
