package spec

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestBlobSet(t *testing.T) {
	t.Parallel()
	var listed []digest.Digest
	m := &Manifest{}
	for i := range 130 { // more than two words of bits
		d := digest.FromString(string(rune('a' + i)))
		listed = append(listed, d)
		m.Blobs = append(m.Blobs, Blob{Digest: d})
	}
	m.Sort()
	unlisted := digest.FromString("not in the bundle")
	s := NewBlobSet(m)
	for i, d := range append(listed, unlisted) {
		if s.Has(d) {
			t.Fatalf("%s is in an empty set", d)
		}
		if i%2 != 0 {
			continue
		}
		if !s.Add(d) || s.Add(d) {
			t.Fatalf("adding %s: new, then not new, is not what Add said", d)
		}
	}
	for i, d := range append(listed, unlisted) {
		if s.Has(d) != (i%2 == 0) {
			t.Errorf("Has(%s) = %v, want %v", d, s.Has(d), i%2 == 0)
		}
	}
	// Without ferry.json, every digest is kept aside; nil holds nothing.
	none := NewBlobSet(nil)
	if !none.Add(unlisted) || !none.Has(unlisted) || none.Has(listed[0]) {
		t.Error("a set over no manifest does not keep what is added")
	}
	var nilSet *BlobSet
	if nilSet.Has(unlisted) {
		t.Error("a nil set holds something")
	}
}
