package bundle

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/delta"
	"github.com/ferry-oci/ferry/layout"
)

// Plan is what an export or import will move, known before the first blob
// moves.
type Plan struct {
	Images []PlannedImage
	// Referrers are the signatures, attestations, SBOMs and other artifacts
	// that refer to the images' manifests, or to each other.
	Referrers []PlannedReferrer
	// Blobs lists every distinct blob of every image (manifests included),
	// sorted by digest.
	Blobs []PlannedBlob
	// Baselines are the digests of the baseline files the plan subtracted.
	Baselines []digest.Digest
}

// PlannedImage is one image reference and its graph.
type PlannedImage struct {
	Source Reference
	Root   ocispec.Descriptor
	// Graph lists every descriptor reachable from Root, children first,
	// Root last (layout.Graph.Walk: shared, never to be changed).
	Graph []*ocispec.Descriptor
	// Selection, when a platform selection narrowed the image, says how:
	// Root is then the new index (or the one manifest) that travels.
	Selection *Selection
}

// PlannedBlob is one blob of the plan.
type PlannedBlob struct {
	// Desc is shared with the graphs of the images that use it: never to
	// be changed.
	Desc *ocispec.Descriptor
	// Repositories are the source repository paths whose images use it.
	Repositories []string
	// Included is false when a baseline says the destination has it, or
	// when it is Foreign and the export does not include foreign layers.
	Included bool
	// Foreign is true for a foreign or non-distributable layer.
	Foreign bool

	// sources are the registry repositories the blob can be fetched from.
	sources []source
}

// source is a registry repository a blob can be fetched from.
type source struct{ registry, repository string }

// Manifest reports whether the blob is a manifest or index.
func (b PlannedBlob) Manifest() bool { return layout.IsManifest(b.Desc.MediaType) }

// IncludedBytes is the size of all included blobs.
func (p *Plan) IncludedBytes() (n int64, count int) {
	for _, b := range p.Blobs {
		if b.Included {
			n += b.Desc.Size
			count++
		}
	}
	return n, count
}

// ReferrersByImage lists, for each of p.Images in order, the referrers of
// its manifests and what refers to those, as ferry.json records them. The
// referrers are indexed once, not searched once per image.
func (p *Plan) ReferrersByImage() [][]spec.Referrer {
	byRepo := map[string][]spec.Referrer{}
	for _, r := range p.Referrers {
		byRepo[r.Source.Name()] = append(byRepo[r.Source.Name()], r.record())
	}
	index := map[string]map[digest.Digest][]int{}
	out := make([][]spec.Referrer, len(p.Images))
	for i, img := range p.Images {
		name := img.Source.Name()
		all := byRepo[name]
		if len(all) == 0 {
			continue
		}
		if index[name] == nil {
			index[name] = indexReferrers(all)
		}
		out[i] = referrersOf(img.Graph, all, index[name])
	}
	return out
}

// indexReferrers lists, for each subject, the positions in all of the
// referrers that refer to it.
func indexReferrers(all []spec.Referrer) map[digest.Digest][]int {
	bySubject := map[digest.Digest][]int{}
	for i, r := range all {
		bySubject[r.Subject] = append(bySubject[r.Subject], i)
	}
	return bySubject
}

// referrersOf picks, from all (indexed by indexReferrers), the referrers
// of the manifests of graph and, level by level, what refers to them;
// within a level, in all's order. It looks only at what refers to what it
// has found, so a bundle of thousands of images and referrers stays linear.
func referrersOf(graph []*ocispec.Descriptor, all []spec.Referrer, bySubject map[digest.Digest][]int) []spec.Referrer {
	var out []spec.Referrer
	taken := map[digest.Digest]bool{}
	level := make([]digest.Digest, 0, len(graph))
	for _, d := range graph {
		level = append(level, d.Digest)
	}
	for len(level) > 0 {
		var found []int
		for _, s := range level {
			found = append(found, bySubject[s]...)
		}
		slices.Sort(found)
		level = nil
		for _, i := range slices.Compact(found) {
			if r := all[i]; !taken[r.Descriptor.Digest] {
				taken[r.Descriptor.Digest] = true
				out = append(out, r)
				level = append(level, r.Descriptor.Digest)
			}
		}
	}
	return out
}

// summary counts what the plan holds, before anything moves.
func (p *Plan) summary() ExportSummary {
	s := ExportSummary{Images: len(p.Images), Referrers: len(p.Referrers), Blobs: len(p.Blobs)}
	for _, b := range p.Blobs {
		s.Bytes += b.Desc.Size
		switch {
		case b.Foreign && !b.Included:
			s.Foreign++
			s.ForeignBytes += b.Desc.Size
		case !b.Included:
			s.Omitted++
			s.OmittedBytes += b.Desc.Size
		}
	}
	return s
}

// BundleManifest renders the plan as ferry.json.
func (p *Plan) BundleManifest(creator string, created time.Time) *spec.Manifest {
	// Each list at its size: at 30,000 images they are 11 MB, and grown by
	// appending they were held two and three times over while encoded.
	m := &spec.Manifest{MediaType: spec.MediaType, Created: created.UTC().Truncate(time.Second), Creator: creator, Baselines: p.Baselines,
		Images: make([]spec.Image, 0, len(p.Images)), Referrers: make([]spec.Referrer, 0, len(p.Referrers)), Blobs: make([]spec.Blob, 0, len(p.Blobs))}
	for _, img := range p.Images {
		si := spec.Image{Reference: img.Source.String(), Digest: img.Root.Digest, MediaType: img.Root.MediaType}
		if sel := img.Selection; sel != nil {
			si.Platforms, si.Original = sel.Kept, sel.Original.Digest
		}
		m.Images = append(m.Images, si)
	}
	for _, r := range p.Referrers {
		m.Referrers = append(m.Referrers, r.record())
	}
	for _, b := range p.Blobs {
		m.Blobs = append(m.Blobs, spec.Blob{Digest: b.Desc.Digest, Size: b.Desc.Size, MediaType: b.Desc.MediaType, Repositories: b.Repositories, Included: b.Included, Foreign: b.Foreign})
	}
	return m
}

// collectBlobs merges the graphs of the images and referrers into one blob
// list, each digest once, with every source repository that uses it. The
// graphs are taken in the order of their repositories, so the users of a
// blob in one repository come one after another and a repeat is the pair
// just added: no set of (digest, repository) pairs. A first pass counts,
// so that the list and its sources are allocated once, at their size: the
// plan keeps them to the end, and at tens of thousands of images a list
// grown by appending was held two and three times over.
func collectBlobs(images []PlannedImage, referrers []PlannedReferrer) []PlannedBlob {
	type user struct {
		src   *Reference
		graph []*ocispec.Descriptor
	}
	users := make([]user, 0, len(images)+len(referrers))
	for i := range images {
		users = append(users, user{&images[i].Source, images[i].Graph})
	}
	for i := range referrers {
		users = append(users, user{&referrers[i].Source, referrers[i].Graph})
	}
	slices.SortStableFunc(users, func(a, b user) int { return strings.Compare(a.src.Repository, b.src.Repository) })

	// Pass one: the blobs, and how many repositories use each. A source
	// repository is never empty, so "" is none yet.
	index := map[digest.Digest]int{}
	var descs []*ocispec.Descriptor
	var uses []int
	var last []string
	pairs := 0
	for _, u := range users {
		for _, d := range u.graph {
			i, ok := index[d.Digest]
			if !ok {
				i = len(descs)
				index[d.Digest] = i
				descs, uses, last = append(descs, d), append(uses, 0), append(last, "")
			}
			if last[i] != u.src.Repository {
				last[i] = u.src.Repository
				uses[i]++
				pairs++
			}
		}
	}
	out := make([]PlannedBlob, len(descs))
	srcs, repos := make([]source, pairs), make([]string, pairs)
	off := 0
	for i, d := range descs {
		n := uses[i]
		out[i] = PlannedBlob{
			Desc: d, Included: true, Foreign: !layout.IsManifest(d.MediaType) && layout.IsForeign(*d),
			sources: srcs[off : off : off+n], Repositories: repos[off : off : off+n],
		}
		off += n
	}
	descs, uses = nil, nil
	// Pass two: the repositories, in the same order.
	for _, u := range users {
		for _, d := range u.graph {
			b := &out[index[d.Digest]]
			if n := len(b.Repositories); n == 0 || b.Repositories[n-1] != u.src.Repository {
				b.sources = append(b.sources, source{u.src.Registry, u.src.Repository})
				b.Repositories = append(b.Repositories, u.src.Repository)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Desc.Digest < out[j].Desc.Digest })
	return out
}

// walkImages walks the graph of each root in parallel (at most jobs at
// once) through the fetcher fetch returns for it, filling in Graph.
func walkImages(ctx context.Context, g *layout.Graph, images []PlannedImage, jobs int, fetch func(PlannedImage) (layout.Fetcher, error)) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(jobs)
	var mu sync.Mutex
	for i := range images {
		eg.Go(func() error {
			f, err := fetch(images[i])
			if err != nil {
				return err
			}
			graph, err := g.Walk(ctx, f, images[i].Root)
			if err != nil {
				return registry.Wrap(registry.Source, registry.OpReadGraph, images[i].Source.String(), err)
			}
			mu.Lock()
			images[i].Graph = graph
			mu.Unlock()
			return nil
		})
	}
	return eg.Wait()
}

// indexLen is the number of entries of index.json: one per image
// reference, one per referrer.
func (p *Plan) indexLen() int { return len(p.Images) + len(p.Referrers) }

// indexEntry renders entry i of index.json: an image carries its full
// reference in both annotations; a referrer, its subject. Entries are made
// as index.json is written, never all at once.
func (p *Plan) indexEntry(i int) ocispec.Descriptor {
	if i < len(p.Images) {
		img := p.Images[i]
		d, ref := img.Root, img.Source.String()
		d.Annotations = map[string]string{AnnotationRefName: ref, AnnotationContainerdRef: ref}
		return d
	}
	r := p.Referrers[i-len(p.Images)]
	return ocispec.Descriptor{MediaType: r.Desc.MediaType, Digest: r.Desc.Digest, Size: r.Desc.Size, ArtifactType: r.Desc.ArtifactType,
		Annotations: map[string]string{layout.AnnotationReferrerSubject: r.Subject.String()}}
}

// dropKnownReferrers leaves out every referrer the baseline says the
// destination holds already. A new signature on an old image still
// travels, and so does a new referrer of a known one: its subject is there.
func (p *Plan) dropKnownReferrers(base *delta.Baseline) {
	p.Referrers = slices.DeleteFunc(p.Referrers, func(r PlannedReferrer) bool {
		return base.HasReferrer(r.Source.Repository, r.Desc.Digest)
	})
}

// subtract omits every config and layer the baseline says the destination
// holds, adding the repositories where it lives there. Manifests and indexes
// of images always travel: they are small and import needs them.
func (p *Plan) subtract(base *delta.Baseline) {
	for i := range p.Blobs {
		b := &p.Blobs[i]
		if b.Manifest() || b.Foreign {
			continue
		}
		repos, ok := base.Has(b.Desc.Digest, b.Desc.Size)
		if !ok {
			continue
		}
		b.Included = false
		// Where it lives at the destination first: import mounts from there.
		merged := append([]string{}, repos...)
		have := make(map[string]bool, len(repos))
		for _, r := range repos {
			have[r] = true
		}
		for _, r := range b.Repositories {
			if !have[r] {
				have[r] = true
				merged = append(merged, r)
			}
		}
		b.Repositories = merged
	}
	p.Baselines = base.Files
}
