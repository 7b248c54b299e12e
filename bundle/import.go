package bundle

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

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

// ImportOptions configure Import. Zero values are documented per field.
type ImportOptions struct {
	// Bundle is the bundle: a directory, a .tar or .tar.gz file, any volume
	// of a split set, or "-" for standard input. Required.
	Bundle string
	// To is the destination, REGISTRY[/PREFIX]. Source hosts are dropped and
	// repository paths kept under PREFIX. For a plain OCI layout whose
	// ref.name is a bare tag, PREFIX is the repository. Required.
	To string
	// Dest says how to reach the destination registry.
	Dest registry.Options
	// Jobs bounds how many blobs are hashed or pushed at once; 0 means
	// layout.DefaultJobs.
	Jobs int
	// Progress receives progress events; nil means none.
	Progress Progress
	// DryRun verifies and plans, asking the destination what it has, but
	// pushes nothing.
	DryRun bool
	// VerifyFirst hashes every blob of a directory bundle before the first
	// push, so that a corrupt bundle pushes nothing at all; each blob that
	// is pushed is then read twice. False hashes each blob as it is pushed,
	// reading it once: a blob that does not match is never committed, and
	// the import stops before any manifest or tag, but blobs pushed before
	// it stay (unreferenced, and skipped by the next import). A tarball is
	// read once: VerifyFirst refuses one.
	VerifyFirst bool
	// NoOverwrite refuses, before anything is pushed, to move a tag that
	// points at another image. False means such tags are moved and listed
	// in Summary.TagsMoved.
	NoOverwrite bool
	// KeepHost keeps each source registry's host as the first path
	// component under the prefix (docker.io/x/app:1 →
	// harbor.internal/mirror/docker.io/x/app:1; a port's colon becomes
	// '-'), so the same path on two registries stays apart. False drops
	// the host.
	KeepHost bool
	// Harbor applies Harbor's rules to destination names before any
	// request: the first path component is a project, named by Harbor's
	// stricter rule. False checks OCI's grammar only.
	Harbor bool
	// VerifyKeys, when not empty, are public keys one of which must have
	// signed the bundle (ferry.json.sig over ferry.json): an unsigned
	// bundle, or one whose signature none of them verifies, is refused
	// before any request to the destination. Empty checks no signature.
	VerifyKeys []crypto.PublicKey
	// CreateProjects creates missing Harbor projects (the first path
	// component of each destination repository) through Harbor's API
	// before pushing; it implies Harbor. Projects are created private.
	CreateProjects bool
}

// ImportResult is what Import planned and did.
type ImportResult struct {
	Targets []Target
	// Referrers are the signatures, attestations, SBOMs and other
	// artifacts the bundle carries, and where they go.
	Referrers []TargetReferrer
	// Policies are, with Harbor, the content trust policies of the
	// destination projects and what they make of the bundle.
	Policies []Policy
	// Push lists the blobs (not manifests) the destination lacked, per
	// repository; Present, those it had; Mounted, those a delta omits that
	// were mounted (in a dry run: found mountable) from another repository.
	Push, Present, Mounted []RepoBlob
	// Tags lists every destination tag and where it points before import.
	Tags []TagAction
	// ProjectsCreated lists the Harbor projects CreateProjects created.
	ProjectsCreated []string
	Summary         ImportSummary
}

// Target is one image of the bundle and where it goes.
type Target struct {
	// Source is the reference the bundle names (ref.name).
	Source string
	// SourceRepo is Source's repository path (no host); empty for a layout
	// whose images are named by a bare tag.
	SourceRepo string
	// Dest is where it goes; Dest.Tag is empty for an untagged image.
	Dest Reference
	// Graph is the report's (layout.Graph.WalkFrom: shared, never to be
	// changed), the image's root last.
	Graph []*ocispec.Descriptor
}

// Root is the image's own descriptor: the last of its graph.
func (t Target) Root() *ocispec.Descriptor { return t.Graph[len(t.Graph)-1] }

// RepoBlob is a blob a destination repository needs.
type RepoBlob struct {
	Repository string
	// Desc points into the bundle's graphs: an import of thousands of
	// images holds one descriptor per blob, not one per pair.
	Desc *ocispec.Descriptor
}

// Import pushes a bundle into the destination registry. It checks the
// bundle's structure offline first (layout, every manifest hashed, every
// blob a manifest references present with its size, ferry.json
// consistent), then asks the destination what it has (HEAD before every
// blob, manifest and tag). Then: blobs, each hashed as it streams out, its
// last bytes held back until it verifies, so the registry never commits a
// blob that does not match (see ImportOptions.VerifyFirst); manifests
// children first, once every blob is in; tags last. A tag already at the
// right digest is not touched. Nothing is read that the destination
// already has: a re-import is HEAD requests only.
func Import(ctx context.Context, opts ImportOptions) (*ImportResult, error) {
	res, err := importBundle(ctx, opts)
	return res, harbor.Explain(err)
}

func importBundle(ctx context.Context, opts ImportOptions) (*ImportResult, error) {
	start := time.Now()
	dest, err := ParseDestination(opts.To)
	if err != nil {
		return nil, err
	}
	dest.KeepHost = opts.KeepHost
	if opts.Dest.Log == nil {
		opts.Dest.Log = progressOrNone(opts.Progress).Logf
	}
	c, err := registry.New(registry.Destination, opts.Dest, dest.Registry)
	if err != nil {
		return nil, err
	}
	b, err := layout.Open(opts.Bundle)
	if err != nil {
		return nil, verify.Invalid(err)
	}
	defer b.Close()
	imp := &importer{c: c, dest: dest, opts: opts, jobs: layout.JobsOrDefault(opts.Jobs), prog: progressOrNone(opts.Progress)}

	// 1. resolve: the bundle checked offline, each image given its place.
	targets, err := imp.resolve(ctx, b)
	if err != nil {
		return nil, err
	}
	res := &ImportResult{Targets: targets}
	res.Summary.Images = len(targets)
	for _, t := range targets {
		if t.Dest.Tag == "" {
			res.Summary.Untagged = append(res.Summary.Untagged, t.Dest.Name()+"@"+t.Root().Digest.String())
		}
	}
	res.Summary.Signed, res.Summary.SignatureVerified = imp.report.Signed(), imp.report.SignedBy >= 0
	// 2. plan: what the destination lacks, asked before anything is sent.
	plan, err := imp.plan(ctx, targets, res)
	if err != nil {
		if imp.opts.Harbor || imp.opts.CreateProjects {
			err = imp.explainUnauthorized(ctx, targets, err)
		}
		imp.deleteCreated(ctx, res.ProjectsCreated)
		return nil, err
	}
	// 3. transfer: blobs, each verified before the destination commits it.
	if err := imp.transfer(ctx, plan, &res.Summary); err != nil {
		return nil, err
	}
	if !opts.DryRun {
		// 4. commit: manifests children first, referrers, then tags; then
		// check that every referrer can be found.
		if err := imp.commit(ctx, plan, res); err != nil {
			return nil, err
		}
	}
	res.Summary.Duration = time.Since(start)
	return res, nil
}

// resolve checks the bundle's structure offline, before the first request
// to the destination, and maps each image to where it goes. A directory's
// blobs are hashed as they are pushed (or, with VerifyFirst, all of them
// before the first push); a stream is read once: its head now, its blobs
// as they go by.
func (imp *importer) resolve(ctx context.Context, b layout.Bundle) ([]Target, error) {
	var err error
	switch b := b.(type) {
	case *layout.Dir:
		if imp.report, imp.present, err = verify.Structure(ctx, b); err != nil {
			return nil, err
		}
		imp.dir = b
	case *layout.TarReader:
		if imp.opts.VerifyFirst {
			return nil, fmt.Errorf("%w: --verify-first needs a directory bundle; a tarball is read once, so run 'ferry verify %s' first, or extract it and import the directory", ErrInvalidOption, imp.opts.Bundle)
		}
		imp.tar = b
		if imp.report, err = verify.Head(ctx, b); err != nil {
			return nil, err
		}
	}
	if err := imp.report.CheckSignature(imp.opts.VerifyKeys); err != nil {
		return nil, err
	}
	imp.report.ReleaseSignedBytes()
	if imp.tar != nil {
		imp.tar.ReleaseSignedBytes()
		imp.tar.ReleaseIndex()
	}
	if err := imp.report.Err(); err != nil {
		return nil, err
	}
	imp.graph = imp.report.Graph
	targets, err := mapTargets(imp.report, imp.dest)
	if err != nil {
		return nil, err
	}
	imp.referrers = mapReferrers(imp.report, imp.dest, targets)
	for _, t := range targets {
		if src, err := ParseReference(t.Source); err == nil && !slices.Contains(imp.sourceHosts, src.Registry) {
			imp.sourceHosts = append(imp.sourceHosts, src.Registry)
		}
	}
	if imp.opts.Harbor || imp.opts.CreateProjects {
		for _, t := range targets {
			if err := harbor.CheckRepository(t.Dest.Repository); err != nil {
				return nil, err
			}
		}
	}
	return targets, nil
}

// importPlan is what an import will send: per repository, the graph it
// receives; the blobs the destination lacks; and, per blob, a destination
// repository that holds it already, to mount from.
type importPlan struct {
	repos     []repoGraph
	missing   []RepoBlob
	presentIn map[digest.Digest]string
	// manifestsMissing holds each manifest the destination lacks, in its
	// repository.
	manifestsMissing *pairSet
	// sent holds each digest the import sends (once, whatever the number
	// of repositories), for the summary.
	sent *spec.BlobSet
	// referrers are the bundle's; referrersThere, the keys of those the
	// destination lists already.
	referrers      []TargetReferrer
	referrersThere map[inRepo]bool
}

// plan creates the Harbor projects asked for, then asks the destination
// where its tags point and which blobs it lacks, and mounts what a delta
// omits. It records what it found in res.
func (imp *importer) plan(ctx context.Context, targets []Target, res *ImportResult) (*importPlan, error) {
	var err error
	if imp.opts.CreateProjects && !imp.opts.DryRun {
		var repos []string
		for _, t := range targets {
			repos = append(repos, t.Dest.Repository)
		}
		if res.ProjectsCreated, err = harbor.CreateProjects(ctx, imp.c, imp.dest.Registry, repos, imp.prog.Logf); err != nil {
			return nil, err
		}
		if err := imp.probeCreated(ctx, targets, res.ProjectsCreated); err != nil {
			return nil, err
		}
	}
	if res.Tags, err = imp.planTags(ctx, targets, imp.opts.NoOverwrite); err != nil {
		return nil, err
	}
	imp.known = provablyThere(imp.report.Manifest, targets, res.Tags, imp.opts)
	p := &importPlan{repos: groupByRepository(targets, imp.referrers), referrers: imp.referrers, sent: spec.NewBlobSet(imp.report.Manifest)}
	if err := imp.missingBlobs(ctx, p, targets, res); err != nil {
		return nil, err
	}
	if err := imp.headManifests(ctx, p, &res.Summary); err != nil {
		return nil, err
	}
	res.Summary.Blobs, res.Summary.Bytes = countDistinct(p.repos)
	if p.referrersThere, _, err = imp.discoverable(ctx, p.referrers); err != nil {
		return nil, err
	}
	if imp.opts.Harbor || imp.opts.CreateProjects {
		if err := imp.harborChecks(ctx, p, targets, res); err != nil {
			return nil, err
		}
	}
	for i, r := range p.referrers {
		if p.referrersThere[r.key()] {
			p.referrers[i].Present = true
			res.Summary.ReferrersPresent++
		} else {
			p.send(r.Desc, &res.Summary)
		}
	}
	res.Referrers = p.referrers
	return p, nil
}

// commit pushes the manifests the destination lacks, children first; the
// referrers, then cosign's tags; the user's tags last, so that no tag
// appears before its image's signatures; and checks that every referrer
// the bundle carries can be found there.
func (imp *importer) commit(ctx context.Context, p *importPlan, res *ImportResult) error {
	sum := &res.Summary
	if err := imp.pushManifests(ctx, p, res.Tags); err != nil {
		return err
	}
	if err := imp.pushReferrers(ctx, p, sum); err != nil {
		return err
	}
	if err := imp.pushTags(ctx, res.Tags, sum); err != nil {
		return err
	}
	if err := imp.checkLanded(ctx, p, res.Tags); err != nil {
		return err
	}
	return imp.checkReferrers(ctx, p.referrers)
}

// ErrNotKept: the destination accepted a push it does not hold.
var ErrNotKept = errors.New("the destination does not hold what it accepted")

// checkLanded trusts, but checks: every tag this import set or moved
// resolves to its image, and every manifest it pushed is there, so a
// registry that accepted an upload it did not keep cannot produce a
// reported success. What was there already is not asked again.
func (imp *importer) checkLanded(ctx context.Context, p *importPlan, tags []TagAction) error {
	type check struct {
		repo, what string
		fn         func(context.Context, *registry.Repository) (bool, error)
	}
	var checks []check
	// A tag that resolves to its image shows the image's root manifest is
	// there: that manifest needs no request of its own.
	byTag := map[inRepo]bool{}
	for _, a := range tags {
		if a.Current == a.Target.Root().Digest {
			continue
		}
		a := a
		byTag[inRepo{a.Target.Dest.Repository, a.Target.Root().Digest}] = true
		checks = append(checks, check{a.Target.Dest.Repository, "tag " + a.Target.Dest.String(), func(ctx context.Context, repo *registry.Repository) (bool, error) {
			d, err := repo.Resolve(ctx, a.Target.Dest.Tag)
			if harbor.PullBlocked(err) {
				return true, nil // a policy hides it: nothing to check with
			}
			return err == nil && d.Digest == a.Target.Root().Digest, ignoreNotFound(err)
		}})
	}
	for _, r := range p.repos {
		for _, d := range r.descs {
			if key := (inRepo{r.name, d.Digest}); !p.manifestsMissing.has(key) || byTag[key] {
				continue
			}
			d := *d
			checks = append(checks, check{r.name, "manifest " + d.Digest.String() + " in " + r.name, func(ctx context.Context, repo *registry.Repository) (bool, error) {
				ok, err := repo.Manifests().Exists(ctx, d)
				if harbor.PullBlocked(err) {
					return true, nil
				}
				return ok, err
			}})
		}
	}
	var mu sync.Mutex
	var lost []string
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(imp.jobs)
	for _, c := range checks {
		eg.Go(func() error {
			repo, err := imp.repo(c.repo)
			if err != nil {
				return err
			}
			ok, err := c.fn(ectx, repo)
			if err != nil {
				return imp.c.Wrap(registry.OpCheckMfst, c.what, err)
			}
			if !ok {
				mu.Lock()
				lost = append(lost, c.what)
				mu.Unlock()
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		return fmt.Errorf("%w: after the import, the registry at %s does not have:\n  - %s\nit answered each push with success; check its storage and logs, then import again",
			ErrNotKept, imp.dest.Registry, strings.Join(lost, "\n  - "))
	}
	return nil
}

func ignoreNotFound(err error) error {
	if errors.Is(err, errdef.ErrNotFound) {
		return nil
	}
	return err
}

// transfer moves the blobs the destination lacks. Every blob is verified
// before the destination can commit it: as it is pushed, or, with
// VerifyFirst, all of them before the first push. A dry run pushes nothing
// but hashes the whole bundle: it is a check.
func (imp *importer) transfer(ctx context.Context, p *importPlan, sum *ImportSummary) error {
	if imp.dir != nil && (imp.opts.DryRun || imp.opts.VerifyFirst && len(p.missing) > 0) {
		if err := imp.hash(ctx, imp.present); err != nil {
			return err
		}
		imp.verified = true
	}
	switch {
	case imp.tar != nil:
		return imp.pushStream(ctx, p, sum)
	case !imp.opts.DryRun:
		return imp.pushBlobs(ctx, p, sum)
	}
	return nil
}

// hash reads descs from the bundle directory through their verifiers and
// fails, naming every bad blob and the images it breaks, if any is wrong.
func (imp *importer) hash(ctx context.Context, descs []*ocispec.Descriptor) error {
	err := imp.report.Hash(ctx, imp.dir, descs, verify.Options{Jobs: imp.jobs, Progress: imp.prog})
	if err != nil {
		return err
	}
	return imp.report.Err()
}

// manifest is the bytes of a manifest of the bundle: held by the graph (a
// tarball's head), or read again from the directory and verified. A
// manifest that no longer matches is the bundle's fault, named as such.
func (imp *importer) manifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	data, err := imp.graph.Bytes(ctx, desc)
	if err != nil && ctx.Err() == nil && errors.Is(verify.Invalid(err), verify.ErrBundleInvalid) {
		return nil, imp.report.Fault(desc, err)
	}
	return data, err
}

// mapTargets decides where each image of the bundle goes. Every name is
// checked before any request is made.
func mapTargets(rep *verify.Report, dest Destination) ([]Target, error) {
	n := 0
	for _, img := range rep.Images {
		if img.Subject == "" {
			n++
		}
	}
	out := make([]Target, 0, n) // at its size: an import holds it to the end
	for _, img := range rep.Images {
		if img.Subject != "" {
			continue // a referrer: it goes where its subject goes (mapReferrers)
		}
		t := Target{Source: img.Name, Graph: img.Graph}
		switch {
		case strings.Contains(img.Name, "/"):
			src, err := ParseReference(img.Name)
			if err != nil {
				// A name inside the bundle is the bundle's fault, not the user's.
				return nil, fmt.Errorf("%w: bundle image %q: %v", verify.ErrBundleInvalid, img.Name, err)
			}
			if t.Dest, err = dest.Rewrite(src); err != nil {
				return nil, err
			}
			t.SourceRepo = src.Repository
			if t.Dest.Digest != "" && t.Dest.Digest != img.Root.Digest {
				return nil, fmt.Errorf("bundle image %q: index.json points at %s, not the digest in its name", img.Name, img.Root.Digest)
			}
		default:
			// A bare tag or no name at all, as in layouts written by skopeo
			// or oras: the prefix must be the whole repository.
			if dest.Prefix == "" {
				return nil, fmt.Errorf("%w: bundle image %q has no repository in its name: give --to REGISTRY/REPOSITORY (the repository to push it to)", ErrInvalidReference, img.Name)
			}
			t.Dest = Reference{Registry: dest.Registry, Repository: dest.Prefix}
			if img.Name != img.Root.Digest.String() {
				t.Dest.Tag = img.Name
			}
			if err := t.Dest.validate(); err != nil {
				return nil, fmt.Errorf("bundle image %q: %w: %v", img.Name, ErrInvalidReference, err)
			}
		}
		t.Dest.Digest = ""
		out = append(out, t)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Dest.String() < out[j].Dest.String() })
	return refuseCollisions(out)
}

// ErrTagCollision: two images of a bundle would get the same destination
// tag, and the second would silently take it from the first.
var ErrTagCollision = errors.New("two images for one destination tag")

// refuseCollisions refuses, before any request, targets that would give one
// destination tag to two different images, naming both sources; the same
// image under one tag from two sources is pushed once.
func refuseCollisions(targets []Target) ([]Target, error) {
	out := targets[:0] // in place: thousands of targets are not copied
	var clashes []string
	first := map[string]int{} // into out
	for _, t := range targets {
		if t.Dest.Tag == "" {
			out = append(out, t)
			continue
		}
		key := t.Dest.String()
		i, ok := first[key]
		switch {
		case !ok:
			first[key] = len(out)
			out = append(out, t)
		case out[i].Root().Digest != t.Root().Digest:
			prev := out[i]
			clashes = append(clashes, fmt.Sprintf("%s: %s (%s) and %s (%s)", key, prev.Source, prev.Root().Digest, t.Source, t.Root().Digest))
		}
	}
	if len(clashes) > 0 {
		return nil, fmt.Errorf("%w (%w); nothing was pushed:\n  - %s\nimport with --keep-host to keep each source registry's name in the path (harbor.internal/mirror/docker.io/x/app:1), or export them in separate bundles and import each under its own --to prefix",
			ErrTagCollision, ErrInvalidReference, strings.Join(clashes, "\n  - "))
	}
	return out, nil
}

// repoGraph is what one destination repository receives.
type repoGraph struct {
	name string
	// descs lists every descriptor, children first, each once: pointers
	// into the targets' graphs, not copies.
	descs []*ocispec.Descriptor
}

// inRepo is a digest in a destination repository: the key of the plan's
// sets. A struct, not a joined string, so that the thousands of keys share
// the names and digests the plan holds anyway.
type inRepo struct {
	repo   string
	digest digest.Digest
}

// provablyThere is what the destination provably holds: everything below
// an image whose tag already points at it, in its repository, since a
// registry stores a manifest only once everything it references is there
// (and ferry pushes children first). A re-import then costs one tag lookup
// an image, and a delta requests in proportion to what changed. A dry run
// (verify --against) and --verify-first check everything instead.
func provablyThere(m *spec.Manifest, targets []Target, tags []TagAction, opts ImportOptions) *pairSet {
	if opts.DryRun || opts.VerifyFirst {
		return nil
	}
	known := newPairSet(m)
	for _, a := range tags {
		if a.Current == "" || a.Current != a.Target.Root().Digest {
			continue
		}
		for _, d := range a.Target.Graph {
			known.add(inRepo{a.Target.Dest.Repository, d.Digest})
		}
	}
	return known
}

// send counts d as sent, once per digest.
func (p *importPlan) send(d ocispec.Descriptor, sum *ImportSummary) {
	if p.sent.Add(d.Digest) {
		sum.Sent++
		sum.SentBytes += d.Size
	}
}

// countDistinct counts the distinct digests the repositories receive, and
// their bytes: the descriptors sorted by digest, so that tens of thousands
// are counted without a set of them.
func countDistinct(repos []repoGraph) (int, int64) {
	var all []*ocispec.Descriptor
	for _, r := range repos {
		all = append(all, r.descs...)
	}
	slices.SortFunc(all, func(a, b *ocispec.Descriptor) int { return cmp.Compare(a.Digest, b.Digest) })
	var n int
	var size int64
	for i, d := range all {
		if i == 0 || d.Digest != all[i-1].Digest {
			n++
			size += d.Size
		}
	}
	return n, size
}

// groupByRepository lists what each destination repository receives: its
// images' graphs, then its referrers' graphs, each descriptor once, the
// repositories in the order of their first image. One repository is
// gathered at a time, through one set of digests emptied between them:
// tens of thousands of repositories never hold a set each at once.
func groupByRepository(targets []Target, referrers []TargetReferrer) []repoGraph {
	index := map[string]int{}
	var out []repoGraph
	for _, t := range targets {
		if _, ok := index[t.Dest.Repository]; !ok {
			index[t.Dest.Repository] = len(out)
			out = append(out, repoGraph{name: t.Dest.Repository})
		}
	}
	groupOf := func(name string) int {
		if i, ok := index[name]; ok {
			return i
		}
		return -1 // its subject's image is not in this bundle: nothing to refer to
	}
	tOrder, tStart := bucketed(len(out), len(targets), func(k int) int { return groupOf(targets[k].Dest.Repository) })
	rOrder, rStart := bucketed(len(out), len(referrers), func(k int) int { return groupOf(referrers[k].Dest.Repository) })
	seen := map[digest.Digest]struct{}{}
	for i := range out {
		clear(seen)
		add := func(graph []*ocispec.Descriptor) {
			for _, d := range graph {
				if _, ok := seen[d.Digest]; !ok {
					seen[d.Digest] = struct{}{}
					out[i].descs = append(out[i].descs, d)
				}
			}
		}
		for _, k := range tOrder[tStart[i]:tStart[i+1]] {
			add(targets[k].Graph)
		}
		for _, k := range rOrder[rStart[i]:rStart[i+1]] {
			add(referrers[k].Graph)
		}
	}
	return out
}

// bucketed sorts the items 0..n-1 into groups 0..groups-1 (group says
// which; below 0, none), keeping their order within each: order lists
// them group by group, and group g's are order[start[g]:start[g+1]]. A
// counting sort: linear in n.
func bucketed(groups, n int, group func(int) int) (order []int32, start []int32) {
	start = make([]int32, groups+1)
	for k := range n {
		if g := group(k); g >= 0 {
			start[g+1]++
		}
	}
	for g := range groups {
		start[g+1] += start[g]
	}
	order = make([]int32, start[groups])
	next := slices.Clone(start[:groups])
	for k := range n {
		if g := group(k); g >= 0 {
			order[next[g]] = int32(k)
			next[g]++
		}
	}
	return order, start
}

type importer struct {
	c    *registry.Client
	opts ImportOptions
	// dir is the bundle directory; nil when the bundle is a stream.
	dir *layout.Dir
	// tar is the bundle tarball being streamed; nil for a directory.
	tar *layout.TarReader
	// present lists the configs and layers dir holds, for VerifyFirst.
	present []*ocispec.Descriptor
	// verified says every blob in dir was hashed before the first push.
	verified bool
	graph    *layout.Graph
	// report is the bundle's verification; it is not changed after
	// resolve.
	report *verify.Report
	// referrers are the bundle's, mapped to their destinations.
	referrers []TargetReferrer
	// sourceHosts are the registries the bundle's images came from.
	sourceHosts []string
	// known holds what is provably at the destination already, in its
	// repository (provablyThere): never asked for.
	known *pairSet
	// sources caches, per digest, the repositories an omitted blob may be
	// mounted from (mountSources).
	sources sync.Map
	// mountedFrom records, per inRepo, the repository
	// an omitted blob was mounted (dry run: found mountable) from.
	mountedFrom sync.Map
	dest        Destination
	jobs        int
	prog        Progress
}

// bundleFault records that a blob of the bundle failed verification while
// it was pushed, and returns the report's error naming it and the images
// it breaks.
func (imp *importer) bundleFault(desc ocispec.Descriptor, err error) error {
	return imp.report.Fault(desc, err)
}

func (imp *importer) repo(name string) (*registry.Repository, error) {
	return imp.c.Repository(imp.dest.Registry, name)
}
