package bundle

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/errdef"

	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/layout"
)

// PlannedReferrer is one artifact of the plan that refers to a manifest:
// a signature, an attestation, an SBOM, or anything else with a subject.
type PlannedReferrer struct {
	// Source is the registry and repository it was found in: its subject's.
	Source Reference
	// Subject is the manifest it refers to.
	Subject digest.Digest
	// Desc is its manifest, with its artifactType and annotations.
	Desc ocispec.Descriptor
	// Tag is cosign's tag for it (sha256-<hex>.sig, .att, .sbom); empty
	// for an OCI 1.1 referrer.
	Tag string
	// Graph lists every descriptor reachable from Desc, children first,
	// Desc last (layout.Graph.Walk: shared, never to be changed).
	Graph []*ocispec.Descriptor
}

// Kind says what a referrer is, for people: a cosign signature, an
// attestation, an SBOM, a notation signature, or its artifact type.
func Kind(r spec.Referrer) string {
	at := r.Descriptor.ArtifactType
	switch {
	case strings.HasSuffix(r.Tag, ".sig"), at == "application/vnd.dev.cosign.artifact.sig.v1+json":
		return "cosign signature"
	case strings.HasSuffix(r.Tag, ".att"), strings.Contains(at, "in-toto"), at == "application/vnd.dsse.envelope.v1+json",
		strings.HasPrefix(at, "application/vnd.dev.sigstore.bundle"):
		return "attestation"
	case strings.HasSuffix(r.Tag, ".sbom"), strings.Contains(at, "spdx"), strings.Contains(at, "cyclonedx"), strings.Contains(at, "sbom"):
		return "SBOM"
	case at == "application/vnd.cncf.notary.signature":
		return "notation signature"
	case at == "":
		return "artifact"
	}
	return "artifact " + at
}

// record is the referrer as ferry.json lists it.
func (r PlannedReferrer) record() spec.Referrer {
	return spec.Referrer{Repository: r.Source.Repository, Subject: r.Subject, Descriptor: r.Desc, Tag: r.Tag}
}

// referrerFinder discovers the referrers of a plan's manifests at the
// source, recursively, each (repository, digest) once.
type referrerFinder struct {
	c     *registry.Client
	graph *layout.Graph
	jobs  int
	logf  func(string, ...any)

	mu   sync.Mutex
	seen map[string]bool     // repository name + "@" + digest
	tags map[string][]string // repository name → its cosign tags, or nil when they cannot be listed
	// indexes holds, per repository name whose tags could be listed, the
	// referrers-tag-schema tags (sha256-<hex>) there are.
	indexes map[string]map[string]bool
	found   []PlannedReferrer
}

// subjectIn is one manifest whose referrers are asked for, in the
// repository it lives in.
type subjectIn struct {
	src  Reference
	desc ocispec.Descriptor
}

// discoverReferrers finds, for every manifest of every image's graph (an
// index and each child, nested indexes too), what refers to it in the
// image's source repository: the referrers API or its tag schema, and
// cosign's tags; then what refers to those, level by level.
func discoverReferrers(ctx context.Context, c *registry.Client, g *layout.Graph, images []PlannedImage, jobs int, logf func(string, ...any)) ([]PlannedReferrer, error) {
	f := &referrerFinder{c: c, graph: g, jobs: jobs, logf: logf, seen: map[string]bool{}, tags: map[string][]string{}, indexes: map[string]map[string]bool{}}
	var level []subjectIn
	for _, img := range images {
		src := Reference{Registry: img.Source.Registry, Repository: img.Source.Repository}
		for _, d := range img.Graph {
			if layout.IsManifest(d.MediaType) && f.mark(src, d.Digest) {
				level = append(level, subjectIn{src, *d})
			}
		}
	}
	if err := f.listTags(ctx, level); err != nil {
		return nil, err
	}
	for depth := 0; len(level) > 0; depth++ {
		if depth > layout.MaxDepth {
			logf("referrers nest more than %d deep: the deeper ones are left out", layout.MaxDepth)
			break
		}
		next, err := f.level(ctx, level)
		if err != nil {
			return nil, err
		}
		level = next
	}
	sort.Slice(f.found, func(i, j int) bool {
		a, b := f.found[i], f.found[j]
		if a.Source.Name() != b.Source.Name() {
			return a.Source.Name() < b.Source.Name()
		}
		return a.Desc.Digest < b.Desc.Digest
	})
	return f.found, nil
}

// mark records that digest d of src has been seen, and reports whether it
// is new.
func (f *referrerFinder) mark(src Reference, d digest.Digest) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := src.Name() + "@" + d.String()
	if f.seen[key] {
		return false
	}
	f.seen[key] = true
	return true
}

// listTags lists, once per repository, the cosign tags there are, so that
// no request is sent for a tag that does not exist. Where tags cannot be
// listed, each cosign tag is asked for.
func (f *referrerFinder) listTags(ctx context.Context, subjects []subjectIn) error {
	repos := map[string]Reference{}
	for _, s := range subjects {
		repos[s.src.Name()] = s.src
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(f.jobs)
	for name, src := range repos {
		eg.Go(func() error {
			repo, err := f.c.Repository(src.Registry, src.Repository)
			if err != nil {
				return err
			}
			tags, err := f.c.Tags(ctx, repo)
			var cosign []string
			indexes := map[string]bool{}
			for _, t := range tags {
				if _, ok := registry.CosignSubject(t); ok {
					cosign = append(cosign, t)
				} else if strings.HasPrefix(t, "sha") {
					indexes[t] = true
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if err != nil {
				f.logf("%s: cannot list tags (%v); asking for each cosign tag instead", name, err)
				return nil
			}
			if cosign == nil {
				cosign = []string{}
			}
			f.tags[name] = cosign
			f.indexes[name] = indexes
			return nil
		})
	}
	return eg.Wait()
}

// level finds the referrers of every subject, at most f.jobs at once, and
// returns the new referrers as the next level's subjects.
func (f *referrerFinder) level(ctx context.Context, subjects []subjectIn) ([]subjectIn, error) {
	var mu sync.Mutex
	var next []subjectIn
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(f.jobs)
	for _, s := range subjects {
		eg.Go(func() error {
			found, err := f.referrersOf(ctx, s)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range found {
				next = append(next, subjectIn{r.Source, r.Desc})
			}
			return nil
		})
	}
	return next, eg.Wait()
}

// referrersOf finds what refers to one subject, walks the graph of each new
// one, and records it.
func (f *referrerFinder) referrersOf(ctx context.Context, s subjectIn) ([]PlannedReferrer, error) {
	repo, err := f.c.Repository(s.src.Registry, s.src.Repository)
	if err != nil {
		return nil, err
	}
	var listed []ocispec.Descriptor
	if f.mayHaveReferrers(repo, s) {
		if listed, err = f.c.Referrers(ctx, repo, s.desc); err != nil {
			return nil, err
		}
	}
	type candidate struct {
		desc ocispec.Descriptor
		tag  string
	}
	var cands []candidate
	for _, d := range listed {
		cands = append(cands, candidate{d, ""})
	}
	tagged, err := f.cosignTags(ctx, repo, s)
	if err != nil {
		return nil, err
	}
	for tag, d := range tagged {
		cands = append(cands, candidate{d, tag})
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].tag < cands[j].tag })
	var out []PlannedReferrer
	for _, cand := range cands {
		if !layout.IsManifest(cand.desc.MediaType) || !f.mark(s.src, cand.desc.Digest) {
			continue
		}
		r, ok, err := f.walk(ctx, repo, s, cand.desc, cand.tag)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, r)
		}
	}
	f.mu.Lock()
	f.found = append(f.found, out...)
	f.mu.Unlock()
	return out, nil
}

// mayHaveReferrers is false only when the repository is known to keep
// referrers in the tag schema and its tag list has no index for s: then
// there is nothing to ask for.
func (f *referrerFinder) mayHaveReferrers(repo *registry.Repository, s subjectIn) bool {
	f.mu.Lock()
	indexes, listed := f.indexes[s.src.Name()]
	f.mu.Unlock()
	return !listed || !f.c.NoReferrersAPI(repo) || indexes[registry.ReferrersTag(s.desc.Digest)]
}

// cosignTags resolves the cosign tags of a subject that exist.
func (f *referrerFinder) cosignTags(ctx context.Context, repo *registry.Repository, s subjectIn) (map[string]ocispec.Descriptor, error) {
	f.mu.Lock()
	known, listed := f.tags[s.src.Name()]
	f.mu.Unlock()
	out := map[string]ocispec.Descriptor{}
	for _, suffix := range registry.CosignSuffixes {
		tag := registry.CosignTag(s.desc.Digest, suffix)
		if listed && !slices.Contains(known, tag) {
			continue
		}
		d, err := repo.Resolve(ctx, tag)
		if errors.Is(err, errdef.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, f.c.Wrap(registry.OpResolve, s.src.Name()+":"+tag, err)
		}
		out[tag] = ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
	}
	return out, nil
}

// walk reads a referrer's graph, verified, and describes it. A referrer
// found through the API or the tag schema whose manifest names another
// subject is left out, and said so.
func (f *referrerFinder) walk(ctx context.Context, repo *registry.Repository, s subjectIn, d ocispec.Descriptor, tag string) (PlannedReferrer, bool, error) {
	graph, err := f.graph.Walk(ctx, repo, d)
	if err != nil {
		return PlannedReferrer{}, false, f.c.Wrap(registry.OpReadGraph, s.src.Name()+"@"+d.Digest.String(), err)
	}
	data, err := f.graph.Bytes(ctx, d)
	if err != nil {
		return PlannedReferrer{}, false, f.c.Wrap(registry.OpReadGraph, s.src.Name()+"@"+d.Digest.String(), err)
	}
	var m struct {
		ArtifactType string              `json:"artifactType"`
		Config       *ocispec.Descriptor `json:"config"`
		Subject      *ocispec.Descriptor `json:"subject"`
		Annotations  map[string]string   `json:"annotations"`
	}
	json.Unmarshal(data, &m) // Walk has parsed it already
	if tag == "" && (m.Subject == nil || m.Subject.Digest != s.desc.Digest) {
		f.logf("%s: the referrers of %s list %s, whose manifest names another subject: left out", s.src.Name(), s.desc.Digest, d.Digest)
		return PlannedReferrer{}, false, nil
	}
	desc := ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	if desc.ArtifactType == "" && m.Config != nil && m.Config.MediaType != ocispec.MediaTypeImageConfig && m.Config.MediaType != ocispec.MediaTypeEmptyJSON {
		desc.ArtifactType = m.Config.MediaType
	}
	return PlannedReferrer{Source: s.src, Subject: s.desc.Digest, Desc: desc, Tag: tag, Graph: graph}, true, nil
}
