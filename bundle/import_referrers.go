package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/errdef"

	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/bundle/registry/harbor"
	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/verify"
)

// TargetReferrer is one referrer of the bundle and where it goes: into the
// repository its subject goes to.
type TargetReferrer struct {
	// Dest is the destination registry and repository (no tag).
	Dest    Reference
	Subject digest.Digest
	Desc    ocispec.Descriptor
	// Tag is cosign's tag for it, set at the destination too; empty for an
	// OCI 1.1 referrer.
	Tag string
	// Graph lists every descriptor reachable from Desc, children first
	// (the report's: shared, never to be changed).
	Graph []*ocispec.Descriptor
	// Image names an image of the bundle it belongs to, for messages.
	Image string
	// Present says the destination listed it already, before the import.
	Present bool
}

// Kind says what the referrer is (see Kind).
func (r TargetReferrer) Kind() string { return Kind(r.record()) }

func (r TargetReferrer) key() inRepo { return inRepo{r.Dest.Repository, r.Desc.Digest} }

func (r TargetReferrer) record() spec.Referrer {
	return spec.Referrer{Repository: r.Dest.Repository, Subject: r.Subject, Descriptor: r.Desc, Tag: r.Tag}
}

// ErrReferrersMissing: after an import, a referrer the bundle carries
// cannot be found at the destination.
var ErrReferrersMissing = errors.New("referrers missing at the destination")

// mapReferrers decides where each referrer of the bundle goes: the
// repository of its subject, through --to.
func mapReferrers(rep *verify.Report, dest Destination, targets []Target) []TargetReferrer {
	if rep.Manifest == nil || len(rep.Manifest.Referrers) == 0 {
		return nil
	}
	graphs := map[digest.Digest][]*ocispec.Descriptor{}
	for _, img := range rep.Images {
		if img.Subject != "" {
			graphs[img.Root.Digest] = img.Graph
		}
	}
	// Where each manifest of a source repository goes, and the image it
	// belongs to: a referrer goes where its subject went.
	type place struct{ repo, image string }
	placed := map[string]place{} // source repository + "@" + digest
	for _, t := range targets {
		for _, d := range t.Graph {
			key := t.SourceRepo + "@" + d.Digest.String()
			if _, ok := placed[key]; !ok {
				placed[key] = place{t.Dest.Repository, t.Dest.String()}
			}
		}
	}
	out := make([]TargetReferrer, len(rep.Manifest.Referrers))
	done := make([]bool, len(out))
	// A referrer of a referrer is placed once its subject is: level by
	// level (ferry.json lists at most a few deep).
	for range layout.MaxDepth + 1 {
		for i, r := range rep.Manifest.Referrers {
			p, ok := placed[r.Repository+"@"+r.Subject.String()]
			if done[i] || !ok {
				continue
			}
			out[i] = TargetReferrer{Dest: Reference{Registry: dest.Registry, Repository: p.repo}, Subject: r.Subject, Desc: r.Descriptor, Tag: r.Tag, Graph: graphs[r.Descriptor.Digest], Image: p.image}
			placed[r.Repository+"@"+r.Descriptor.Digest.String()] = p
			done[i] = true
		}
	}
	// What refers to a manifest the bundle does not carry (its subject is
	// at the destination already) goes to its repository's place there.
	hosts := map[string]string{} // source repository → a destination repository
	for _, t := range targets {
		hosts[t.SourceRepo] = t.Dest.Repository
	}
	for i, r := range rep.Manifest.Referrers {
		if !done[i] {
			repo, ok := hosts[r.Repository]
			if !ok {
				repo = dest.Candidates(r.Repository, nil)[0]
			}
			out[i] = TargetReferrer{Dest: Reference{Registry: dest.Registry, Repository: repo}, Subject: r.Subject, Desc: r.Descriptor, Tag: r.Tag, Graph: graphs[r.Descriptor.Digest], Image: r.Repository + "@" + r.Subject.String()}
		}
	}
	return out
}

// referrerRoots is the set of referrer manifests per repository, which
// pushManifests leaves to pushReferrers.
func referrerRoots(refs []TargetReferrer) map[inRepo]bool {
	out := map[inRepo]bool{}
	for _, r := range refs {
		out[r.key()] = true
	}
	return out
}

// discoverable asks the destination, the way export found them, which of
// refs it lists: the referrers of each subject (API or tag schema), and
// where each cosign tag points. It returns the keys of those it found, and
// of those it could not tell because a policy blocks the reads (Harbor's
// 412), which are neither found nor missing.
func (imp *importer) discoverable(ctx context.Context, refs []TargetReferrer) (found, blocked map[inRepo]bool, err error) {
	type group struct {
		repo    string
		subject digest.Digest
	}
	groups := map[group][]TargetReferrer{}
	for _, r := range refs {
		g := group{r.Dest.Repository, r.Subject}
		groups[g] = append(groups[g], r)
	}
	var mu sync.Mutex
	found, blocked = map[inRepo]bool{}, map[inRepo]bool{}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(imp.jobs)
	for g, rs := range groups {
		eg.Go(func() error {
			repo, err := imp.repo(g.repo)
			if err != nil {
				return err
			}
			listed, err := imp.c.Referrers(ectx, repo, ocispec.Descriptor{Digest: g.subject})
			listBlocked := harbor.PullBlocked(err)
			if err != nil && !listBlocked {
				return err
			}
			here := map[digest.Digest]bool{}
			for _, d := range listed {
				here[d.Digest] = true
			}
			for _, r := range rs {
				ok, isBlocked := here[r.Desc.Digest], listBlocked
				if r.Tag != "" { // cosign finds it by its tag, and only so
					d, err := repo.Resolve(ectx, r.Tag)
					isBlocked = harbor.PullBlocked(err)
					switch {
					case err == nil:
						ok = d.Digest == r.Desc.Digest
					case errors.Is(err, errdef.ErrNotFound), isBlocked:
						ok = false
					default:
						return imp.c.Wrap(registry.OpCheckTag, r.Dest.Name()+":"+r.Tag, err)
					}
				}
				mu.Lock()
				if ok {
					found[r.key()] = true
				} else if isBlocked {
					blocked[r.key()] = true
				}
				mu.Unlock()
			}
			return nil
		})
	}
	return found, blocked, eg.Wait()
}

// pushReferrers pushes every referrer manifest the destination does not
// list yet (a registry without the referrers API gets the subject's
// referrers index updated, merged with what is there; oras-go merges the
// updates of one subject that run at once into one), at most imp.jobs at
// once, subjects before what refers to them; then cosign's tags.
func (imp *importer) pushReferrers(ctx context.Context, p *importPlan, sum *ImportSummary) error {
	var todo []TargetReferrer
	pending := map[digest.Digest]bool{} // referrers not pushed yet, by digest
	for _, r := range p.referrers {
		if !p.referrersThere[r.key()] {
			todo = append(todo, r)
			pending[r.Desc.Digest] = true
		}
	}
	push := func(r TargetReferrer, tag string) func(context.Context) error {
		return func(ctx context.Context) error {
			repo, err := imp.repo(r.Dest.Repository)
			if err != nil {
				return err
			}
			desc := ocispec.Descriptor{MediaType: r.Desc.MediaType, Digest: r.Desc.Digest, Size: r.Desc.Size}
			data, err := imp.manifest(ctx, desc)
			if err != nil {
				return err
			}
			if tag == "" {
				err = repo.Manifests().Push(ctx, desc, bytes.NewReader(data))
				return imp.c.Wrap(registry.OpPushManifest, "referrer "+r.Desc.Digest.String()+" to "+r.Dest.Repository, err)
			}
			err = repo.Manifests().PushReference(ctx, desc, bytes.NewReader(data), tag)
			return imp.c.Wrap(registry.OpTag, r.Dest.Name()+":"+tag+" (cosign's tag for "+r.Subject.String()+")", err)
		}
	}
	// Level by level: a referrer whose subject is itself waiting goes in a
	// later level.
	for len(todo) > 0 {
		var level, later []TargetReferrer
		for _, r := range todo {
			if pending[r.Subject] {
				later = append(later, r)
			} else {
				level = append(level, r)
			}
		}
		if len(level) == 0 { // a loop: no order helps, push them all
			level, later = later, nil
		}
		var fns []func(context.Context) error
		for _, r := range level {
			fns = append(fns, push(r, ""))
		}
		if err := imp.parallel(ctx, fns); err != nil {
			return err
		}
		for _, r := range level {
			delete(pending, r.Desc.Digest)
		}
		sum.ReferrersPushed += len(level)
		todo = later
	}
	// cosign finds its signatures by tag: set them once every referrer
	// manifest is in, before any user tag.
	var tags []func(context.Context) error
	for _, r := range p.referrers {
		if r.Tag != "" && !p.referrersThere[r.key()] {
			tags = append(tags, push(r, r.Tag))
		}
	}
	return imp.parallel(ctx, tags)
}

// parallel runs fns, at most imp.jobs at once, and returns the first error.
func (imp *importer) parallel(ctx context.Context, fns []func(context.Context) error) error {
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(imp.jobs)
	for _, fn := range fns {
		eg.Go(func() error { return fn(ectx) })
	}
	return eg.Wait()
}

// checkReferrers is import's last step: every referrer the bundle carries
// must be discoverable at the destination the way export found it. It
// names each that is not, with its image.
func (imp *importer) checkReferrers(ctx context.Context, refs []TargetReferrer) error {
	if len(refs) == 0 {
		return nil
	}
	found, blocked, err := imp.discoverable(ctx, refs)
	if err != nil {
		return err
	}
	var missing []string
	for _, r := range refs {
		if blocked[r.key()] {
			imp.prog.Logf("%s %s of %s: pushed, but the registry's policy blocks reading it back (HTTP 412), so it was not checked", r.Kind(), r.Desc.Digest, r.Image)
			continue
		}
		if !found[r.key()] {
			how := "the referrers of " + r.Subject.String()
			if r.Tag != "" {
				how = "the tag " + r.Tag
			}
			missing = append(missing, fmt.Sprintf("%s %s of %s in %s: not found through %s", r.Kind(), r.Desc.Digest, r.Image, r.Dest.Name(), how))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %d of %d after the import (the images are tagged, but policies that check signatures will refuse them):\n  - %s",
			ErrReferrersMissing, len(missing), len(refs), strings.Join(missing, "\n  - "))
	}
	return nil
}
