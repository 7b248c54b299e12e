package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"

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
	Dest RegistryOptions
	// Jobs bounds how many blobs are hashed or pushed at once; 0 means
	// DefaultJobs.
	Jobs int
	// Progress receives progress events; nil means none.
	Progress Progress
	// DryRun verifies and plans, asking the destination what it has, but
	// pushes nothing.
	DryRun bool
	// NoOverwrite refuses, before anything is pushed, to move a tag that
	// points at another image. False means such tags are moved and listed
	// in Summary.TagsMoved.
	NoOverwrite bool
	// Harbor applies Harbor's rules to destination names before any
	// request: the first path component is a project, named by Harbor's
	// stricter rule. False checks OCI's grammar only.
	Harbor bool
	// CreateProjects creates missing Harbor projects (the first path
	// component of each destination repository) through Harbor's API
	// before pushing; it implies Harbor. Projects are created private.
	CreateProjects bool
}

// ImportResult is what Import planned and did.
type ImportResult struct {
	Targets []Target
	// Push lists the blobs (not manifests) the destination lacked, per
	// repository; Present, those it had; Mounted, those a delta omits that
	// were mounted (in a dry run: found mountable) from another repository.
	Push, Present, Mounted []RepoBlob
	// Tags lists every destination tag and where it points before import.
	Tags []TagAction
	// ProjectsCreated lists the Harbor projects CreateProjects created.
	ProjectsCreated []string
	Summary         Summary
}

// Target is one image of the bundle and where it goes.
type Target struct {
	// Source is the reference the bundle names (ref.name).
	Source string
	// Dest is where it goes; Dest.Tag is empty for an untagged image.
	Dest  Reference
	Root  ocispec.Descriptor
	Graph []ocispec.Descriptor
}

// RepoBlob is a blob a destination repository needs.
type RepoBlob struct {
	Repository string
	Desc       ocispec.Descriptor
}

// Import pushes a bundle into the destination registry. It checks the
// bundle's structure offline first (layout, every manifest, every reference
// accounted for, ferry.json consistent), then asks the destination what it
// has (HEAD before every blob, manifest and tag), then hashes every included
// blob, and pushes nothing if anything is wrong. Then: blobs, manifests
// children first, tags last; a tag already at the right digest is not
// touched. When the destination already holds every blob, nothing of the
// bundle's is pushed and nothing is read: a re-import is HEAD requests only.
func Import(ctx context.Context, opts ImportOptions) (*ImportResult, error) {
	res, err := importBundle(ctx, opts)
	return res, explain(err, "dest")
}

func importBundle(ctx context.Context, opts ImportOptions) (*ImportResult, error) {
	start := time.Now()
	prog := progressOrNone(opts.Progress)
	jobs := jobsOrDefault(opts.Jobs)
	dest, err := ParseDestination(opts.To)
	if err != nil {
		return nil, err
	}
	c, err := newClient(opts.Dest, dest.Registry)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	imp := &importer{c: c, dest: dest, jobs: jobs, prog: prog}

	var (
		tr      *layout.TarReader
		present []ocispec.Descriptor // configs and layers in a directory bundle
	)
	if isDir(opts.Bundle) {
		// Check the bundle's structure offline before the first request to
		// the destination; its blobs are hashed after the plan, before the
		// first push.
		dir, err := layout.OpenDir(opts.Bundle)
		if err != nil {
			return nil, err
		}
		if imp.report, present, err = verify.Structure(ctx, dir); err != nil {
			return nil, err
		}
		imp.dir = dir
	} else {
		// A stream is read once: check its head now, its blobs as they go by.
		if tr, err = layout.OpenTar(opts.Bundle); err != nil {
			return nil, err
		}
		defer tr.Close()
		if imp.report, err = verify.Head(ctx, tr); err != nil {
			return nil, err
		}
	}
	if err := imp.report.Err(); err != nil {
		return nil, err
	}
	imp.graph = imp.report.Graph
	targets, err := mapTargets(imp.report, dest)
	if err != nil {
		return nil, err
	}
	res := &ImportResult{Targets: targets}
	res.Summary.Images = len(targets)
	if opts.Harbor || opts.CreateProjects {
		for _, t := range targets {
			if err := CheckHarbor(t.Dest.Repository); err != nil {
				return nil, err
			}
		}
	}
	if opts.CreateProjects && !opts.DryRun {
		if res.ProjectsCreated, err = imp.createProjects(ctx, targets); err != nil {
			return nil, err
		}
	}

	// Plan: ask the destination where its tags point and which blobs it
	// lacks; mount what a delta omits.
	if res.Tags, err = imp.planTags(ctx, targets, opts.NoOverwrite); err != nil {
		return nil, err
	}
	repos := groupByRepository(targets)
	missing, err := imp.missingBlobs(ctx, repos, targets, opts.DryRun, res)
	if err != nil {
		return nil, err
	}

	// Every included blob is hashed before the first push: a corrupt
	// bundle pushes nothing. When the destination already has every blob
	// (a re-import), nothing of the bundle's would be pushed, so nothing is
	// read: the re-import is HEAD requests only (ferry verify still checks
	// the bundle whole). A dry run always hashes: it is a check.
	if imp.dir != nil && (len(missing) > 0 || opts.DryRun) {
		if err := imp.hash(ctx, present); err != nil {
			return nil, err
		}
	}

	// Transfer: blobs.
	switch {
	case tr != nil:
		err = imp.pushStream(ctx, tr, missing, opts.DryRun, &res.Summary)
	case !opts.DryRun:
		err = imp.pushBlobs(ctx, missing, &res.Summary)
	}
	if err != nil {
		return nil, err
	}
	if opts.DryRun {
		res.Summary.Duration = time.Since(start)
		return res, nil
	}
	// Commit: manifests children first, then tags.
	if err := imp.pushManifests(ctx, repos, &res.Summary); err != nil {
		return nil, err
	}
	if err := imp.pushTags(ctx, res.Tags, &res.Summary); err != nil {
		return nil, err
	}
	res.Summary.Duration = time.Since(start)
	return res, nil
}

// hash reads descs from the bundle directory through their verifiers and
// fails, naming every bad blob and the images it breaks, if any is wrong.
func (imp *importer) hash(ctx context.Context, descs []ocispec.Descriptor) error {
	vopts := verify.Options{Jobs: imp.jobs, Progress: imp.prog.Add, Total: func(n int64) { imp.prog.Start("verify", n) }}
	err := imp.report.Hash(ctx, imp.dir, descs, vopts)
	imp.prog.Done()
	if err != nil {
		return err
	}
	return imp.report.Err()
}

// isDir reports whether path is a directory bundle; anything else is read
// as a tarball (a file, a split set, or "-" for standard input).
func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// mapTargets decides where each image of the bundle goes. Every name is
// checked before any request is made.
func mapTargets(rep *verify.Report, dest Destination) ([]Target, error) {
	var out []Target
	for _, img := range rep.Images {
		t := Target{Source: img.Name, Root: img.Root, Graph: img.Graph}
		switch {
		case strings.Contains(img.Name, "/"):
			src, err := ParseReference(img.Name)
			if err != nil {
				return nil, fmt.Errorf("bundle image %q: %w", img.Name, err)
			}
			if t.Dest, err = dest.Rewrite(src); err != nil {
				return nil, err
			}
			if t.Dest.Digest != "" && t.Dest.Digest != img.Root.Digest {
				return nil, fmt.Errorf("bundle image %q: index.json points at %s, not the digest in its name", img.Name, img.Root.Digest)
			}
		default:
			// A bare tag or no name at all, as in layouts written by skopeo
			// or oras: the prefix must be the whole repository.
			if dest.Prefix == "" {
				return nil, fmt.Errorf("bundle image %q has no repository in its name: give --to REGISTRY/REPOSITORY", img.Name)
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
	return out, nil
}

// repoGraph is what one destination repository receives.
type repoGraph struct {
	name string
	// descs lists every descriptor, children first, each once.
	descs []ocispec.Descriptor
}

func groupByRepository(targets []Target) []repoGraph {
	index := map[string]int{}
	var out []repoGraph
	seen := map[string]map[digest.Digest]bool{}
	for _, t := range targets {
		name := t.Dest.Repository
		i, ok := index[name]
		if !ok {
			i = len(out)
			index[name] = i
			out = append(out, repoGraph{name: name})
			seen[name] = map[digest.Digest]bool{}
		}
		for _, d := range t.Graph {
			if !seen[name][d.Digest] {
				seen[name][d.Digest] = true
				out[i].descs = append(out[i].descs, d)
			}
		}
	}
	return out
}

type importer struct {
	c *client
	// dir is the bundle directory; nil when the bundle is a stream.
	dir    *layout.Dir
	graph  *layout.Graph
	report *verify.Report
	dest   Destination
	jobs   int
	prog   Progress
}

func (imp *importer) repo(name string) (*remote.Repository, error) {
	return imp.c.repository(imp.dest.Registry, name)
}

// missingBlobs HEADs every config and layer in every repository that needs
// it and returns those the destination lacks and the bundle carries.
//
// A blob the bundle omits (a delta) and the target repository lacks is
// mounted from a repository where ferry.json says it lives, mapped through
// --to; in a dry run, a HEAD there stands in for the mount. If neither finds
// it, the import fails before anything is pushed, listing every such blob
// and the images it breaks.
func (imp *importer) missingBlobs(ctx context.Context, repos []repoGraph, targets []Target, dryRun bool, res *ImportResult) ([]RepoBlob, error) {
	sum := &res.Summary
	var all []RepoBlob
	for _, r := range repos {
		for _, d := range r.descs {
			if !layout.IsManifest(d.MediaType) {
				all = append(all, RepoBlob{Repository: r.name, Desc: d})
			}
		}
	}
	const (
		absent = iota
		present
		mounted
	)
	state := make([]int, len(all))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(imp.jobs)
	for i, rb := range all {
		eg.Go(func() error {
			repo, err := imp.repo(rb.Repository)
			if err != nil {
				return err
			}
			ok, err := repo.Blobs().Exists(ectx, rb.Desc)
			if err != nil {
				return fmt.Errorf("destination: checking blob %s in %s: %w", rb.Desc.Digest, rb.Repository, err)
			}
			if ok {
				state[i] = present
				return nil
			}
			if imp.inBundle(rb.Desc) {
				return nil
			}
			ok, err = imp.mountOmitted(ectx, repo, rb, dryRun)
			if err != nil {
				return err
			}
			if ok {
				state[i] = mounted
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	var missing []RepoBlob
	var lost []string
	for i, rb := range all {
		switch {
		case state[i] == present:
			sum.Skipped++
			sum.SkippedBytes += rb.Desc.Size
			res.Present = append(res.Present, rb)
		case state[i] == mounted:
			sum.Mounted++
			res.Mounted = append(res.Mounted, rb)
		case imp.inBundle(rb.Desc):
			missing = append(missing, rb)
			res.Push = append(res.Push, rb)
		default:
			lost = append(lost, fmt.Sprintf("%s (%s) in %s, needed by %s", rb.Desc.Digest, HumanBytes(rb.Desc.Size), rb.Repository, strings.Join(imagesUsing(targets, rb), ", ")))
		}
	}
	if len(lost) > 0 {
		return nil, fmt.Errorf("%w: %d blob(s) this delta bundle omits are neither in their repository at %s nor mountable from where its baseline says they live:\n  - %s\nimport the bundles the baseline came from first, or export again against a fresh 'ferry inventory' of the destination",
			ErrMissingAtDestination, len(lost), imp.dest.Registry, strings.Join(lost, "\n  - "))
	}
	return missing, nil
}

// ErrMissingAtDestination: a delta bundle relies on blobs the destination
// does not have.
var ErrMissingAtDestination = errors.New("blobs missing at the destination")

// mountOmitted tries to make an omitted blob appear in repo by mounting it
// from each repository ferry.json says it lives in. A registry that answers
// a mount with 202 (an upload, not a mount) or an error is treated as "not
// mounted there", never as a failed import. In a dry run, it only HEADs.
func (imp *importer) mountOmitted(ctx context.Context, repo *remote.Repository, rb RepoBlob, dryRun bool) (bool, error) {
	for _, from := range imp.mountSources(rb) {
		if dryRun {
			src, err := imp.repo(from)
			if err != nil {
				continue
			}
			if ok, err := src.Blobs().Exists(ctx, rb.Desc); err == nil && ok {
				return true, nil
			}
			continue
		}
		mctx, slot := withUploadSlot(ctx)
		err := repo.Mount(mctx, rb.Desc, from, func() (io.ReadCloser, error) { return nil, errNotMounted })
		if errors.Is(err, errNotMounted) {
			imp.c.cancelUpload(ctx, slot)
		}
		if err == nil {
			imp.prog.Logf("mounted %s into %s from %s", rb.Desc.Digest, rb.Repository, from)
			return true, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
	return false, nil
}

var errNotMounted = errors.New("registry started an upload instead of mounting")

// mountSources are the destination repositories an omitted blob may be
// mounted from: where ferry.json says it lives, mapped through --to.
func (imp *importer) mountSources(rb RepoBlob) []string {
	m := imp.report.Manifest
	if m == nil {
		return nil
	}
	b, ok := m.Blob(rb.Desc.Digest)
	if !ok {
		return nil
	}
	var out []string
	for _, r := range b.Repositories {
		if to := imp.dest.Repository(r); to != rb.Repository && !slices.Contains(out, to) {
			out = append(out, to)
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

// pushBlobs uploads every missing blob. A digest needed by several
// repositories is read from the bundle once: pushed to the first, then
// mounted into the others.
func (imp *importer) pushBlobs(ctx context.Context, missing []RepoBlob, sum *Summary) error {
	byDigest := map[digest.Digest][]RepoBlob{}
	var order []digest.Digest
	var total int64
	for _, rb := range missing {
		if _, ok := byDigest[rb.Desc.Digest]; !ok {
			order = append(order, rb.Desc.Digest)
			total += rb.Desc.Size
		}
		byDigest[rb.Desc.Digest] = append(byDigest[rb.Desc.Digest], rb)
	}
	sort.SliceStable(order, func(i, j int) bool { return byDigest[order[i]][0].Desc.Size > byDigest[order[j]][0].Desc.Size })
	imp.prog.Start("push", total)
	defer imp.prog.Done()
	var mu sync.Mutex
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(imp.jobs)
	for _, d := range order {
		eg.Go(func() error {
			targets := byDigest[d]
			first := targets[0]
			if err := imp.pushBlob(ectx, first, imp.prog); err != nil {
				return err
			}
			mounted := 0
			for _, rb := range targets[1:] {
				if err := imp.mountOrPush(ectx, rb, first.Repository); err != nil {
					return err
				}
				mounted++
			}
			mu.Lock()
			sum.Transferred++
			sum.TransferredBytes += first.Desc.Size
			sum.Mounted += mounted
			mu.Unlock()
			return nil
		})
	}
	return eg.Wait()
}

// pushBlob streams one blob from the bundle to a repository, verified on
// the way. A transient failure starts over in a new upload session, after a
// HEAD in case the last attempt did arrive; a chunk is never re-sent into a
// session that failed.
func (imp *importer) pushBlob(ctx context.Context, rb RepoBlob, prog Progress) error {
	repo, err := imp.repo(rb.Repository)
	if err != nil {
		return err
	}
	var sent int64
	err = withRetry(ctx, func(attempt int) error {
		if attempt > 0 {
			prog.Add(-sent)
			sent = 0
			if ok, err := repo.Blobs().Exists(ctx, rb.Desc); err != nil {
				return err
			} else if ok {
				return nil
			}
			imp.prog.Logf("retrying blob %s to %s (attempt %d)", rb.Desc.Digest, rb.Repository, attempt+1)
		}
		// Every blob was hashed by the verification before the first push,
		// and the registry hashes it again before it commits the upload
		// under its digest: a third hash here would only cost CPU the
		// registry needs.
		rc, err := imp.dir.OpenChecked(rb.Desc)
		if err != nil {
			return fmt.Errorf("reading blob %s from the bundle: %w", rb.Desc.Digest, err)
		}
		defer rc.Close()
		uctx, slot := withUploadSlot(ctx)
		err = repo.Blobs().Push(uctx, rb.Desc, countingReader{rc, progressFunc(func(n int64) { sent += n; prog.Add(n) })})
		if err != nil {
			imp.c.cancelUpload(ctx, slot)
		}
		return expiredDuringUpload(err, attempt)
	})
	if err != nil {
		return fmt.Errorf("destination: pushing blob %s to %s: %w", rb.Desc.Digest, rb.Repository, err)
	}
	return nil
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
		if imp.dir == nil {
			return nil, fmt.Errorf("the registry did not mount %s from %s, and a stream cannot be read twice", rb.Desc.Digest, from)
		}
		return imp.dir.Fetch(ctx, rb.Desc)
	}
	if err := repo.Mount(ctx, rb.Desc, from, getContent); err != nil {
		return fmt.Errorf("destination: mounting blob %s from %s into %s: %w", rb.Desc.Digest, from, rb.Repository, err)
	}
	return nil
}

// pushManifests pushes, per repository, every manifest and index the
// destination lacks, children before parents. Repositories go in parallel.
func (imp *importer) pushManifests(ctx context.Context, repos []repoGraph, sum *Summary) error {
	var mu sync.Mutex
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(imp.jobs)
	for _, r := range repos {
		eg.Go(func() error {
			repo, err := imp.repo(r.name)
			if err != nil {
				return err
			}
			for _, d := range r.descs {
				if !layout.IsManifest(d.MediaType) {
					continue
				}
				ok, err := repo.Manifests().Exists(ectx, d)
				if pullBlocked(err) {
					// Harbor's policy hides the manifest from reads; a PUT of
					// the same digest is harmless, so push it.
					ok, err = false, nil
				}
				if err != nil {
					return fmt.Errorf("destination: checking manifest %s in %s: %w", d.Digest, r.name, err)
				}
				mu.Lock()
				if ok {
					sum.Skipped++
					sum.SkippedBytes += d.Size
				} else {
					sum.Transferred++
					sum.TransferredBytes += d.Size
				}
				mu.Unlock()
				if ok {
					continue
				}
				data, _ := imp.graph.Manifest(d.Digest)
				if err := repo.Manifests().Push(ectx, d, bytes.NewReader(data)); err != nil {
					return fmt.Errorf("destination: pushing manifest %s to %s: %w", d.Digest, r.name, err)
				}
			}
			return nil
		})
	}
	return eg.Wait()
}

// TagAction is what import will do with one destination tag.
type TagAction struct {
	Target Target
	// Current is the digest the tag points at now; empty when absent.
	Current digest.Digest
}

// ErrTagWouldMove: --no-overwrite refused to move a tag that points at
// another image.
var ErrTagWouldMove = errors.New("tags point at other images")

// planTags resolves every destination tag before anything is pushed. With
// noOverwrite, a tag that points at another image stops the import there,
// naming every such tag.
func (imp *importer) planTags(ctx context.Context, targets []Target, noOverwrite bool) ([]TagAction, error) {
	var out []TagAction
	var refused []string
	for _, t := range targets {
		if t.Dest.Tag == "" {
			continue
		}
		repo, err := imp.repo(t.Dest.Repository)
		if err != nil {
			return nil, err
		}
		a := TagAction{Target: t}
		cur, err := repo.Resolve(ctx, t.Dest.Tag)
		switch {
		case err == nil:
			a.Current = cur.Digest
		case pullBlocked(err):
			// Harbor's policy hides where the tag points: it is set, and
			// reported as set.
			imp.prog.Logf("%s: the registry's policy blocks reading this tag (HTTP 412); it will be set", t.Dest)
		case !errors.Is(err, errdef.ErrNotFound):
			return nil, fmt.Errorf("destination: resolving %s: %w", t.Dest, err)
		}
		if noOverwrite && a.Current != "" && a.Current != t.Root.Digest {
			refused = append(refused, fmt.Sprintf("%s points at %s; the bundle has %s", t.Dest, a.Current, t.Root.Digest))
		}
		out = append(out, a)
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("%w and --no-overwrite is set; nothing was pushed:\n  - %s", ErrTagWouldMove, strings.Join(refused, "\n  - "))
	}
	return out, nil
}

// pushTags points each destination tag at its image, last of all. A tag
// already there is left alone (Harbor's immutable tags refuse even an
// identical push); one pointing elsewhere is moved and reported.
func (imp *importer) pushTags(ctx context.Context, actions []TagAction, sum *Summary) error {
	for _, a := range actions {
		t := a.Target
		if a.Current == t.Root.Digest {
			sum.TagsUnchanged++
			continue
		}
		repo, err := imp.repo(t.Dest.Repository)
		if err != nil {
			return err
		}
		data, _ := imp.graph.Manifest(t.Root.Digest)
		if err := repo.Manifests().PushReference(ctx, t.Root, bytes.NewReader(data), t.Dest.Tag); err != nil {
			return fmt.Errorf("destination: tagging %s: %w", t.Dest, err)
		}
		if a.Current != "" {
			sum.TagsMoved = append(sum.TagsMoved, fmt.Sprintf("%s (was %s)", t.Dest, a.Current))
			imp.prog.Logf("moved tag %s from %s to %s", t.Dest, a.Current, t.Root.Digest)
		} else {
			sum.TagsSet = append(sum.TagsSet, t.Dest.String())
		}
	}
	return nil
}

// pushStream reads every blob of a tarball as it goes by, verified: the ones
// the destination lacks are pushed (to the first repository that needs
// them, then mounted into the others), the rest are hashed and dropped. If
// any blob fails, or the stream ends before every blob the images need has
// gone by, it returns an error and nothing more is pushed: no manifest, no
// tag. In a dry run nothing is pushed; every blob is still verified.
func (imp *importer) pushStream(ctx context.Context, tr *layout.TarReader, missing []RepoBlob, dryRun bool, sum *Summary) error {
	need := map[digest.Digest][]RepoBlob{}
	var total int64
	for _, b := range imp.report.Manifest.Blobs {
		if b.Included && !layout.IsManifest(b.MediaType) {
			total += b.Size
		}
	}
	for _, rb := range missing {
		need[rb.Desc.Digest] = append(need[rb.Desc.Digest], rb)
	}
	imp.prog.Start("import", total)
	defer imp.prog.Done()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		desc, r, err := tr.NextBlob()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", verify.ErrBundleInvalid, err)
		}
		targets := need[desc.Digest]
		if len(targets) == 0 || dryRun {
			if _, err := io.Copy(io.Discard, countingReader{r, imp.prog}); err != nil {
				return fmt.Errorf("%w: %v", verify.ErrBundleInvalid, err)
			}
			imp.report.Seen(desc)
			continue
		}
		repo, err := imp.repo(targets[0].Repository)
		if err != nil {
			return err
		}
		rec := &readErr{r: countingReader{r, imp.prog}}
		uctx, slot := withUploadSlot(ctx)
		if err := repo.Blobs().Push(uctx, desc, rec); err != nil {
			imp.c.cancelUpload(ctx, slot)
			// The registry may answer before our reader reports the fault
			// (it checks the digest too): the bundle's fault comes first.
			if rec.err != nil && !errors.Is(rec.err, context.Canceled) {
				return fmt.Errorf("%w: %v", verify.ErrBundleInvalid, rec.err)
			}
			if registryRejectedDigest(err) {
				return fmt.Errorf("%w: %s: the destination hashed the blob to something else: the bundle is corrupt (%v)", verify.ErrBundleInvalid, desc.Digest, err)
			}
			return fmt.Errorf("destination: pushing blob %s to %s: %w", desc.Digest, targets[0].Repository, err)
		}
		imp.report.Seen(desc)
		for _, rb := range targets[1:] {
			if err := imp.mountOrPush(ctx, rb, targets[0].Repository); err != nil {
				return err
			}
			sum.Mounted++
		}
		sum.Transferred++
		sum.TransferredBytes += desc.Size
	}
	imp.report.Finish(tr.Name())
	return imp.report.Err()
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
