package bundle

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/bundle/registry/harbor"
	"github.com/ferry-oci/ferry/layout"
)

// pushBlobs uploads every missing blob. A digest needed by several
// repositories is read from the bundle once: pushed to the first, then
// mounted into the others. After a failure no new upload starts, but the
// ones under way finish: each verifies itself, nothing is left half-sent at
// the destination, and a re-run skips what they stored. Only cancelling ctx
// (an interrupt) stops them.
func (imp *importer) pushBlobs(ctx context.Context, p *importPlan, sum *ImportSummary) error {
	groups, total := groupByDigest(p.missing)
	size := func(g []int32) int64 { return p.missing[g[0]].Desc.Size }
	imp.prog.Start("push", total)
	defer imp.prog.Done()
	// Each digest is sent once, to the first repository that lacks it;
	// then every other repository that needs it gets it by a mount, the
	// mounts spread over the jobs (a shared base layer goes into hundreds
	// of repositories).
	type mount struct {
		i    int32 // into p.missing
		from string
	}
	var (
		failed atomic.Bool
		eg     errgroup.Group
		mu     sync.Mutex
		mounts []mount
	)
	eg.SetLimit(imp.jobs)
	for _, targets := range groups {
		eg.Go(func() error {
			if failed.Load() {
				return nil
			}
			d := p.missing[targets[0]].Desc.Digest
			from := p.presentIn[d]
			if from == "" {
				first := p.missing[targets[0]]
				if err := imp.pushBlob(ctx, first); err != nil {
					failed.Store(true)
					return err
				}
				from, targets = first.Repository, targets[1:]
			} else {
				imp.prog.Add(size(targets))
			}
			mu.Lock()
			defer mu.Unlock()
			for _, i := range targets {
				mounts = append(mounts, mount{i, from})
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	// As for uploads: after a failure no new mount starts, and the ones
	// under way finish.
	var meg errgroup.Group
	meg.SetLimit(imp.jobs)
	for _, m := range mounts {
		meg.Go(func() error {
			if failed.Load() {
				return nil
			}
			if err := imp.mountOrPush(ctx, p.missing[m.i], m.from); err != nil {
				failed.Store(true)
				return err
			}
			return nil
		})
	}
	return meg.Wait()
}

// byDigest is the indexes of pairs sorted by digest, each digest's in
// their order.
func byDigest(pairs []RepoBlob) []int32 {
	idx := make([]int32, len(pairs))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int { return cmp.Compare(pairs[a].Desc.Digest, pairs[b].Desc.Digest) })
	return idx
}

// pairIndex finds the pairs of a digest among many: indexes sorted by
// digest (four bytes a pair), not a map of lists beside them.
type pairIndex struct {
	pairs []RepoBlob
	idx   []int32
}

func newPairIndex(pairs []RepoBlob) pairIndex { return pairIndex{pairs, byDigest(pairs)} }

// of lists d's pairs, in their order; none when d has none.
func (x pairIndex) of(d digest.Digest) []RepoBlob {
	start := sort.Search(len(x.idx), func(k int) bool { return x.pairs[x.idx[k]].Desc.Digest >= d })
	var out []RepoBlob
	for k := start; k < len(x.idx) && x.pairs[x.idx[k]].Desc.Digest == d; k++ {
		out = append(out, x.pairs[x.idx[k]])
	}
	return out
}

// groupByDigest groups the pairs by digest, largest blob first: each group
// is indexes into missing, in their order (the first repository that lacks
// a blob stays first). Indexes sorted by digest, not a map and not a second
// copy of the pairs: a few bytes a pair at tens of thousands of them. total
// is the bytes of the distinct blobs.
func groupByDigest(missing []RepoBlob) (groups [][]int32, total int64) {
	idx := byDigest(missing)
	digestOf := func(i int32) digest.Digest { return missing[i].Desc.Digest }
	for start := 0; start < len(idx); {
		end := start + 1
		for end < len(idx) && digestOf(idx[end]) == digestOf(idx[start]) {
			end++
		}
		groups = append(groups, idx[start:end:end])
		total += missing[idx[start]].Desc.Size
		start = end
	}
	size := func(g []int32) int64 { return missing[g[0]].Desc.Size }
	sort.SliceStable(groups, func(i, j int) bool { return size(groups[i]) > size(groups[j]) })
	return groups, total
}

// pushBlob uploads one blob from the bundle directory to rb.Repository,
// hashed on the way out (or, after VerifyFirst, only size-checked: the
// registry hashes it again before it commits the upload).
func (imp *importer) pushBlob(ctx context.Context, rb RepoBlob) error {
	open := func(int) (io.ReadCloser, error) { return imp.dir.Fetch(ctx, *rb.Desc) }
	if imp.verified {
		// Hashed already, and the registry hashes it again before it
		// commits the upload under its digest: a third hash would only
		// cost CPU the registry needs.
		open = func(int) (io.ReadCloser, error) { return imp.dir.OpenChecked(*rb.Desc) }
	}
	return imp.upload(ctx, *rb.Desc, rb.Repository, true, open)
}

// upload pushes one blob to repository, reading it through open, which is
// told the attempt (0 first). Readers that verify hold the last bytes back
// until the blob verifies, so a bad blob is never committed. A transient
// failure starts over in a new upload session, after a HEAD in case the
// last attempt did arrive (a chunk is never re-sent into a session that
// failed), unless retry is false: bytes that cannot be read twice. A fault
// in the bundle's bytes is final and reported as the bundle's.
func (imp *importer) upload(ctx context.Context, desc ocispec.Descriptor, repository string, retry bool, open func(attempt int) (io.ReadCloser, error)) error {
	repo, err := imp.repo(repository)
	if err != nil {
		return err
	}
	var sent int64
	try := func(attempt int) error {
		if attempt > 0 {
			imp.prog.Add(-sent)
			sent = 0
			if ok, err := repo.Blobs().Exists(ctx, desc); err != nil {
				return err
			} else if ok {
				return nil
			}
			imp.prog.Logf("retrying blob %s to %s (attempt %d)", desc.Digest, repository, attempt+1)
		}
		rc, err := open(attempt)
		if err != nil {
			return &bundleErr{fmt.Errorf("reading it from the bundle: %w", err)}
		}
		defer rc.Close()
		rec := &readErr{r: countingReader{rc, progressFunc(func(n int64) { sent += n; imp.prog.Add(n) })}}
		uctx, slot := registry.WithUploadSlot(ctx)
		err = repo.Blobs().Push(uctx, desc, rec)
		if err == nil {
			return nil
		}
		imp.c.CancelUpload(ctx, slot)
		// The registry may answer before our reader reports the fault (it
		// checks the digest too): the bundle's fault comes first.
		if rec.err != nil && !errors.Is(rec.err, context.Canceled) {
			return &bundleErr{rec.err}
		}
		return registry.ExpiredDuringUpload(err, attempt, slot.Opened())
	}
	if retry {
		err = registry.WithRetry(ctx, try)
	} else {
		err = try(0)
	}
	var be *bundleErr
	switch {
	case err == nil:
		return nil
	case errors.As(err, &be):
		return imp.bundleFault(desc, be.err)
	case registry.RejectedDigest(err):
		return imp.rejectedDigest(desc, err)
	}
	return imp.c.Wrap(registry.OpPushBlob, desc.Digest.String()+" to "+repository, err)
}

// bundleErr marks a fault in the bundle's bytes met during an upload: final,
// and reported as the bundle's.
type bundleErr struct{ err error }

func (e *bundleErr) Error() string { return e.err.Error() }
func (e *bundleErr) Unwrap() error { return e.err }

// Permanent tells registry.WithRetry not to try again.
func (e *bundleErr) Permanent() bool { return true }

// rejectedDigest is the bundle's fault when the destination refused an
// upload because the bytes hashed to another digest than desc's.
func (imp *importer) rejectedDigest(desc ocispec.Descriptor, err error) error {
	return imp.bundleFault(desc, fmt.Errorf("the destination hashed the blob to something else: the bundle is corrupt (%v)", err))
}

// mountOrPush makes a blob that is already in repository from appear in
// rb.Repository. When the registry does not mount, oras-go falls back to an
// upload read from the bundle.
func (imp *importer) mountOrPush(ctx context.Context, rb RepoBlob, from string) error {
	repo, err := imp.repo(rb.Repository)
	if err != nil {
		return err
	}
	getContent := func() (io.ReadCloser, error) {
		switch {
		case imp.dir != nil:
			return imp.dir.Fetch(ctx, *rb.Desc)
		case imp.tar != nil && imp.tar.CanReopen():
			return imp.tar.Reopen(ctx, *rb.Desc)
		}
		return nil, fmt.Errorf("the registry did not mount %s from %s, and a compressed tarball or standard input cannot be read twice", rb.Desc.Digest, from)
	}
	return imp.c.MountOrUpload(ctx, repo, *rb.Desc, from, getContent)
}

// headManifests asks, per repository, which manifests and indexes the
// destination lacks (referrers' manifests apart: pushReferrers has them),
// at most imp.jobs at once, and records them in p. Harbor's policy may hide
// a manifest from reads (412): it is pushed again, which is harmless.
func (imp *importer) headManifests(ctx context.Context, p *importPlan, sum *ImportSummary) error {
	// Pointers into the graphs, not copies: tens of thousands of pairs.
	type pair struct {
		repo string
		desc *ocispec.Descriptor
	}
	skip := referrerRoots(p.referrers)
	wanted := func(r repoGraph, d *ocispec.Descriptor) bool {
		return layout.IsManifest(d.MediaType) && !skip[inRepo{r.name, d.Digest}]
	}
	n := 0
	for _, r := range p.repos {
		for _, d := range r.descs {
			if wanted(r, d) {
				n++
			}
		}
	}
	all := make([]pair, 0, n)
	for _, r := range p.repos {
		for _, d := range r.descs {
			if wanted(r, d) {
				all = append(all, pair{r.name, d})
			}
		}
	}
	missing := make([]bool, len(all))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(imp.jobs)
	for i, m := range all {
		if imp.known.has(inRepo{m.repo, m.desc.Digest}) {
			continue // provably there
		}
		eg.Go(func() error {
			repo, err := imp.repo(m.repo)
			if err != nil {
				return err
			}
			ok, err := repo.Manifests().Exists(ectx, *m.desc)
			if harbor.PullBlocked(err) {
				ok, err = false, nil
			}
			missing[i] = !ok
			return imp.c.Wrap(registry.OpCheckMfst, m.desc.Digest.String()+" in "+m.repo, err)
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	p.manifestsMissing = newPairSet(imp.report.Manifest)
	for i, m := range all {
		if !missing[i] {
			sum.ManifestsPresent++
			continue
		}
		p.manifestsMissing.add(inRepo{m.repo, m.desc.Digest})
		sum.ManifestsPushed++
		p.send(*m.desc, sum)
	}
	return nil
}

// pushManifests pushes, per repository, every manifest and index the plan
// found missing, children before parents. Repositories go in parallel. A
// root whose tag this import sets, and that nothing in the bundle refers
// to, is left to its tag push (one request, not two): pushTags puts the
// same bytes under the tag, last, as it would anyway.
func (imp *importer) pushManifests(ctx context.Context, p *importPlan, tags []TagAction) error {
	byTag := rootsByTag(tags, p.referrers)
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(imp.jobs)
	for _, r := range p.repos {
		eg.Go(func() error {
			repo, err := imp.repo(r.name)
			if err != nil {
				return err
			}
			for _, d := range r.descs {
				if key := (inRepo{r.name, d.Digest}); !p.manifestsMissing.has(key) || byTag[key] {
					continue
				}
				data, err := imp.manifest(ectx, *d)
				if err != nil {
					return err
				}
				if err := repo.Manifests().Push(ectx, *d, bytes.NewReader(data)); err != nil {
					return imp.foreignHint(*d, imp.c.Wrap(registry.OpPushManifest, d.Digest.String()+" to "+r.name, err))
				}
			}
			return nil
		})
	}
	return eg.Wait()
}

// rootsByTag is the roots, in their repositories, that a tag push of this
// import will store: tags not already at their image, on roots no referrer
// of the bundle names as its subject (those go first, for the referrers).
func rootsByTag(tags []TagAction, referrers []TargetReferrer) map[inRepo]bool {
	subjects := map[inRepo]bool{}
	for _, r := range referrers {
		subjects[inRepo{r.Dest.Repository, r.Subject}] = true
	}
	out := map[inRepo]bool{}
	for _, a := range tags {
		if key := (inRepo{a.Target.Dest.Repository, a.Target.Root().Digest}); a.Current != a.Target.Root().Digest && !subjects[key] {
			out[key] = true
		}
	}
	return out
}

// foreignHint explains a manifest the registry refused when it has foreign
// layers: registries keep such manifests only when their URLs are allowed.
func (imp *importer) foreignHint(d ocispec.Descriptor, err error) error {
	var re *registry.Error
	if !errors.As(err, &re) || re.Status() == 0 {
		return err
	}
	for _, c := range imp.graph.Children(d.Digest) {
		if layout.IsForeign(c) {
			re.Hint = "the manifest has foreign (non-distributable) layers, and the registry refuses their URLs: allow them in the registry's config (distribution: validation.manifests.urls.allow, or validation.disabled as Harbor sets it)"
			break
		}
	}
	return err
}

// readErr remembers the first error other than io.EOF its reader returned.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
