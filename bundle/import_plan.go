package bundle

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/layout"
)

// missingBlobs HEADs every config and layer in every repository that needs
// it and records in p those the destination lacks and the bundle carries.
// It records in p.presentIn a repository holding each blob it found, so
// that pushBlobs and pushStream mount rather than send those again.
//
// A blob the bundle omits (a delta) and the target repository lacks is
// mounted from a repository where ferry.json says it lives, mapped through
// --to; in a dry run, a HEAD there stands in for the mount. If neither finds
// it, the import fails before anything is pushed, listing every such blob
// and the images it breaks.
func (imp *importer) missingBlobs(ctx context.Context, p *importPlan, targets []Target, res *ImportResult) error {
	all := blobsOf(p.repos)
	state, err := imp.headBlobs(ctx, all)
	if err != nil {
		return err
	}
	m := imp.report.Manifest
	// Only a digest some repository lacks needs a repository to mount it
	// from: a re-import finds every blob and keeps no map of them.
	var count [blobStates]int
	lacking := spec.NewBlobSet(m)
	for i, rb := range all {
		if state[i] == blobAbsent && !imp.inBundle(*rb.Desc) {
			state[i] = blobLost
		}
		count[state[i]]++
		if state[i] == blobAbsent {
			lacking.Add(rb.Desc.Digest)
		}
	}
	// A blob already in one repository is mounted, not sent again, into
	// the others that lack it (an import killed between the upload and
	// the mounts leaves exactly that).
	p.presentIn = map[digest.Digest]string{}
	for i, rb := range all {
		if _, ok := p.presentIn[rb.Desc.Digest]; !ok && state[i] == blobPresent && lacking.Has(rb.Desc.Digest) {
			p.presentIn[rb.Desc.Digest] = rb.Repository
		}
	}
	sum := &res.Summary
	res.Present, res.Mounted, res.Push = sized(count[blobPresent]), sized(count[blobMounted]), sized(count[blobAbsent])
	var lost []string
	uploaded, foreign := spec.NewBlobSet(m), spec.NewBlobSet(m)
	for i, rb := range all {
		switch state[i] {
		case blobForeign:
			if foreign.Add(rb.Desc.Digest) {
				sum.Foreign++
			}
		case blobPresent:
			sum.InPlace++
			res.Present = append(res.Present, rb)
		case blobMounted:
			sum.Mounted++
			res.Mounted = append(res.Mounted, rb)
		case blobAbsent:
			res.Push = append(res.Push, rb)
			// Sent once, to the first repository that lacks it, unless the
			// destination holds it elsewhere; mounted into the others.
			if _, elsewhere := p.presentIn[rb.Desc.Digest]; elsewhere || !uploaded.Add(rb.Desc.Digest) {
				sum.Mounted++
			} else {
				sum.Uploads++
				p.send(*rb.Desc, sum)
			}
		default:
			lost = append(lost, fmt.Sprintf("%s (%s) in %s, needed by %s", rb.Desc.Digest, HumanBytes(rb.Desc.Size), rb.Repository, strings.Join(imagesUsing(targets, rb), ", ")))
		}
	}
	p.missing = res.Push // the same list: one copy of thousands of pairs
	if len(lost) > 0 {
		return fmt.Errorf("%w: %d blob(s) this delta bundle omits are neither in their repository at %s nor mountable from where its baseline says they live:\n  - %s\nimport the bundles the baseline came from first, or export again against a fresh 'ferry inventory' of the destination",
			ErrMissingAtDestination, len(lost), imp.dest.Registry, strings.Join(lost, "\n  - "))
	}
	return nil
}

// sized is an empty list of pairs with room for n, or nil for none.
func sized(n int) []RepoBlob {
	if n == 0 {
		return nil
	}
	return make([]RepoBlob, 0, n)
}

// What the destination has of a blob a repository needs.
const (
	blobAbsent  uint8 = iota // the bundle carries it: to be sent
	blobPresent              // there, or provably there
	blobMounted              // a blob the bundle omits, mounted (dry run: mountable)
	blobForeign              // a foreign layer the bundle leaves out: not asked for
	blobLost                 // omitted by the bundle and nowhere to mount it from
	blobStates
)

// blobsOf lists the configs and layers each repository needs.
func blobsOf(repos []repoGraph) []RepoBlob {
	n := 0
	for _, r := range repos {
		for _, d := range r.descs {
			if !layout.IsManifest(d.MediaType) {
				n++
			}
		}
	}
	all := make([]RepoBlob, 0, n) // at its size: held through the plan
	for _, r := range repos {
		for _, d := range r.descs {
			if !layout.IsManifest(d.MediaType) {
				all = append(all, RepoBlob{Repository: r.name, Desc: d})
			}
		}
	}
	return all
}

// headBlobs asks the destination, at most imp.jobs at once, whether each
// repository has each blob, and mounts there the blobs the bundle omits.
func (imp *importer) headBlobs(ctx context.Context, all []RepoBlob) ([]uint8, error) {
	// No request for what imp.known proves is there.
	state := make([]uint8, len(all))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(imp.jobs)
	for i, rb := range all {
		if !imp.inBundle(*rb.Desc) && imp.report.LeftOutForeign(*rb.Desc) {
			state[i] = blobForeign
			continue
		}
		if imp.known.has(inRepo{rb.Repository, rb.Desc.Digest}) {
			state[i] = blobPresent // below a manifest the repository holds: provably there
			continue
		}
		eg.Go(func() error {
			repo, err := imp.repo(rb.Repository)
			if err != nil {
				return err
			}
			ok, err := repo.Blobs().Exists(ectx, *rb.Desc)
			if err != nil {
				return imp.c.Wrap(registry.OpCheckBlob, rb.Desc.Digest.String()+" in "+rb.Repository, err)
			}
			if ok {
				state[i] = blobPresent
				return nil
			}
			if imp.inBundle(*rb.Desc) {
				return nil
			}
			ok, err = imp.mountOmitted(ectx, repo, rb)
			if err != nil {
				return err
			}
			if ok {
				state[i] = blobMounted
			}
			return nil
		})
	}
	return state, eg.Wait()
}

// ErrMissingAtDestination: a delta bundle relies on blobs the destination
// does not have.
var ErrMissingAtDestination = errors.New("blobs missing at the destination")

// mountOmitted tries to make an omitted blob appear in repo by mounting it
// from each repository ferry.json says it lives in. A registry that answers
// a mount with 202 (an upload, not a mount) or an error is treated as "not
// mounted there", never as a failed import. In a dry run, it only HEADs.
func (imp *importer) mountOmitted(ctx context.Context, repo *registry.Repository, rb RepoBlob) (bool, error) {
	for _, from := range imp.mountSources(rb) {
		if imp.opts.DryRun {
			src, err := imp.repo(from)
			if err != nil {
				continue
			}
			if ok, err := src.Blobs().Exists(ctx, *rb.Desc); err == nil && ok {
				imp.mountedFrom.Store(inRepo{rb.Repository, rb.Desc.Digest}, from)
				return true, nil
			}
			continue
		}
		ok, err := imp.c.TryMount(ctx, repo, *rb.Desc, from)
		if err != nil {
			return false, err
		}
		if ok {
			imp.mountedFrom.Store(inRepo{rb.Repository, rb.Desc.Digest}, from)
			imp.prog.Logf("mounted %s into %s from %s", rb.Desc.Digest, rb.Repository, from)
			return true, nil
		}
	}
	return false, nil
}

// mountSources are the destination repositories an omitted blob may be
// mounted from: where ferry.json says it lives, mapped through --to, but
// the repository itself. The list is made once a digest (a base layer may
// live in hundreds of repositories, each of which asks).
func (imp *importer) mountSources(rb RepoBlob) []string {
	all, ok := imp.sources.Load(rb.Desc.Digest)
	if !ok {
		all, _ = imp.sources.LoadOrStore(rb.Desc.Digest, imp.candidates(rb.Desc.Digest))
	}
	var out []string
	for _, to := range all.([]string) {
		if to != rb.Repository {
			out = append(out, to)
		}
	}
	return out
}

// candidates lists, each once, the destination repositories ferry.json
// says blob d lives in.
func (imp *importer) candidates(d digest.Digest) []string {
	m := imp.report.Manifest
	if m == nil {
		return nil
	}
	b, ok := m.Blob(d)
	if !ok {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, r := range b.Repositories {
		for _, to := range imp.dest.Candidates(r, imp.sourceHosts) {
			if !seen[to] {
				seen[to] = true
				out = append(out, to)
			}
		}
	}
	return out
}

func imagesUsing(targets []Target, rb RepoBlob) []string {
	var out []string
	for _, t := range targets {
		if t.Dest.Repository != rb.Repository {
			continue
		}
		for _, d := range t.Graph {
			if d.Digest == rb.Desc.Digest {
				out = append(out, t.Dest.String())
				break
			}
		}
	}
	return out
}

// inBundle reports whether the bundle carries d (rather than omitting it).
func (imp *importer) inBundle(d ocispec.Descriptor) bool {
	if imp.dir == nil {
		b, ok := imp.report.Manifest.Blob(d.Digest)
		return ok && b.Included
	}
	ok, err := imp.dir.Exists(d)
	return err == nil && ok
}
