package delta

import (
	"fmt"
	"os"
	"sort"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/layout"
)

// Baseline is the union of one or more baseline files.
type Baseline struct {
	// Files are the digests of the files merged, sorted.
	Files []digest.Digest
	blobs map[digest.Digest]*entry
	// referrers holds repository + "@" + digest of every referrer listed.
	referrers map[string]bool
}

type entry struct {
	size  int64
	repos map[string]bool
}

// New returns an empty baseline.
func New() *Baseline {
	return &Baseline{blobs: map[digest.Digest]*entry{}, referrers: map[string]bool{}}
}

// Load reads and merges baseline files. Each must be a ferry.json or an
// inventory file; every blob it lists, included or omitted, counts as held
// by the destination.
func Load(paths ...string) (*Baseline, error) {
	b := New()
	for _, p := range paths {
		m, sum, err := readBaseline(p)
		if err != nil {
			return nil, err
		}
		b.Add(m)
		b.Files = append(b.Files, sum)
	}
	sort.Slice(b.Files, func(i, j int) bool { return b.Files[i] < b.Files[j] })
	return b, nil
}

// Add merges the blobs and referrers of m.
func (b *Baseline) Add(m *spec.Manifest) {
	for _, r := range m.Referrers {
		b.referrers[r.Repository+"@"+r.Descriptor.Digest.String()] = true
	}
	for _, blob := range m.Blobs {
		e, ok := b.blobs[blob.Digest]
		if !ok {
			e = &entry{size: blob.Size, repos: map[string]bool{}}
			b.blobs[blob.Digest] = e
		}
		for _, r := range blob.Repositories {
			e.repos[r] = true
		}
	}
}

// Has reports whether the destination holds d (of the given size) and in
// which source-path repositories, sorted. A listed digest with another size
// does not count: that baseline is wrong about it.
func (b *Baseline) Has(d digest.Digest, size int64) ([]string, bool) {
	e, ok := b.blobs[d]
	if !ok || e.size != size {
		return nil, false
	}
	repos := make([]string, 0, len(e.repos))
	for r := range e.repos {
		repos = append(repos, r)
	}
	sort.Strings(repos)
	return repos, true
}

// HasReferrer reports whether the destination holds referrer d in the
// source-path repository repo.
func (b *Baseline) HasReferrer(repo string, d digest.Digest) bool {
	return b.referrers[repo+"@"+d.String()]
}

// Len is the number of distinct blobs listed.
func (b *Baseline) Len() int { return len(b.blobs) }

// Save writes a baseline (or any ferry.json) to path atomically.
func Save(path string, m *spec.Manifest) error {
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	return layout.WriteFileBytes(path, 0o644, data)
}

// readBaseline parses a baseline file as a stream, refusing one over
// spec.MaxSize by its size before reading it, and returns the digest of
// its bytes.
func readBaseline(path string) (*spec.Manifest, digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading baseline: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("reading baseline: %w", err)
	}
	if fi.Size() > spec.MaxSize {
		return nil, "", fmt.Errorf("baseline %s: %w: %d bytes, more than %d", path, spec.ErrTooLarge, fi.Size(), spec.MaxSize)
	}
	m, sum, err := spec.ParseSum(f, path)
	if err != nil {
		return nil, "", fmt.Errorf("baseline %w", err)
	}
	return m, digest.NewDigestFromBytes(digest.SHA256, sum[:]), nil
}
