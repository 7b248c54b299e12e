package spec

import (
	"sort"

	"github.com/opencontainers/go-digest"
)

// BlobIndex returns d's place in Blobs, which Parse sorts by digest, if the
// bundle lists it.
func (m *Manifest) BlobIndex(d digest.Digest) (int, bool) {
	i := sort.Search(len(m.Blobs), func(i int) bool { return m.Blobs[i].Digest >= d })
	return i, i < len(m.Blobs) && m.Blobs[i].Digest == d
}

// BlobSet is a set of digests kept as one bit per blob a parsed ferry.json
// lists: the state a stream of tens of thousands of blobs keeps about each
// (went by, was sent) then costs a bit, not a map entry and its key. A
// digest the bundle does not list is kept aside, in a map. The manifest's
// Blobs must not change while the set is used. The zero value is not
// usable: see NewBlobSet. It is not safe for concurrent use.
type BlobSet struct {
	m     *Manifest
	bits  []uint64
	other map[digest.Digest]bool
}

// NewBlobSet returns an empty set over m's blobs; with no manifest (a
// bundle without ferry.json), over none: every digest is kept aside.
func NewBlobSet(m *Manifest) *BlobSet {
	if m == nil {
		m = &Manifest{}
	}
	return &BlobSet{m: m, bits: make([]uint64, (len(m.Blobs)+63)/64)}
}

// Add puts d in the set and reports whether it was not there before.
func (s *BlobSet) Add(d digest.Digest) bool {
	i, ok := s.m.BlobIndex(d)
	if !ok {
		if s.other[d] {
			return false
		}
		if s.other == nil {
			s.other = map[digest.Digest]bool{}
		}
		s.other[d] = true
		return true
	}
	word, bit := i/64, uint64(1)<<(i%64)
	if s.bits[word]&bit != 0 {
		return false
	}
	s.bits[word] |= bit
	return true
}

// Has reports whether d is in the set; a nil set holds nothing.
func (s *BlobSet) Has(d digest.Digest) bool {
	if s == nil {
		return false
	}
	if i, ok := s.m.BlobIndex(d); ok {
		return s.bits[i/64]&(uint64(1)<<(i%64)) != 0
	}
	return s.other[d]
}
