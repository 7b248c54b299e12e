package bundle

import (
	"slices"
	"sync"

	"github.com/ferry-oci/ferry/bundle/spec"
)

// pairSet is a set of digests in destination repositories: the plan's sets
// of tens of thousands of pairs (what is provably there, which manifests
// are missing). A pair is one 8-byte key, the repository's number and the
// digest's place in ferry.json's blobs, in a sorted list: eight bytes a
// pair, not a map entry (a map of 150,000 such keys held 7 MB). A digest
// ferry.json does not list is kept as it is. Every add comes before the
// first has; reads may then run concurrently. A nil set holds nothing.
type pairSet struct {
	m     *spec.Manifest
	repos map[string]uint32
	keys  []uint64
	other map[inRepo]struct{}
	// sorted sorts and compacts keys, once, at the first has; read says
	// it has, and refuses a later add, which the sorted list would miss.
	sorted sync.Once
	read   bool
}

func newPairSet(m *spec.Manifest) *pairSet {
	return &pairSet{m: m, repos: map[string]uint32{}, other: map[inRepo]struct{}{}}
}

// blob is p's digest's place in ferry.json, if it lists it.
func (s *pairSet) blob(p inRepo) (int, bool) {
	if s.m == nil {
		return 0, false
	}
	return s.m.BlobIndex(p.digest)
}

func (s *pairSet) add(p inRepo) {
	if s.read {
		panic("pairSet: add after has")
	}
	i, listed := s.blob(p)
	if !listed {
		s.other[p] = struct{}{}
		return
	}
	r, ok := s.repos[p.repo]
	if !ok {
		r = uint32(len(s.repos))
		s.repos[p.repo] = r
	}
	s.keys = append(s.keys, uint64(r)<<32|uint64(i))
}

func (s *pairSet) has(p inRepo) bool {
	if s == nil {
		return false
	}
	i, listed := s.blob(p)
	if !listed {
		_, ok := s.other[p]
		return ok
	}
	r, ok := s.repos[p.repo]
	if !ok {
		return false
	}
	s.sorted.Do(func() {
		slices.Sort(s.keys)
		s.keys = slices.Compact(s.keys)
		s.read = true
	})
	_, ok = slices.BinarySearch(s.keys, uint64(r)<<32|uint64(i))
	return ok
}
