package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/delta"
	"github.com/ferry-oci/ferry/layout"
)

// Annotation keys written on each index.json descriptor: both carry the full
// reference, so that a bundle of alpine:latest and nginx:latest stays
// unambiguous for every reader.
const (
	AnnotationRefName       = ocispec.AnnotationRefName
	AnnotationContainerdRef = "io.containerd.image.name"
)

// ExportOptions configure Export. Zero values are documented per field.
type ExportOptions struct {
	// References are the images to carry: tags and/or digests, normalised
	// like docker does. Required.
	References []string
	// Output is the bundle: a directory, or a tarball when the name ends in
	// .tar, .tar.gz or .tgz (gzip-compressed as a whole, in parallel), or
	// when SplitSize is set. Required.
	Output string
	// SplitSize, when positive, writes the tarball as volumes
	// Output.000, Output.001, … of at most SplitSize bytes each, plus
	// Output.sha256sums. Zero means one file.
	SplitSize int64
	// Source says how to reach the source registries.
	Source registry.Options
	// Jobs bounds how many blobs download at once; 0 means DefaultJobs.
	Jobs int
	// Progress receives progress events; nil means none.
	Progress Progress
	// Creator is written to ferry.json; empty means "ferry".
	Creator string
	// Baselines are ferry.json or inventory files listing blobs the
	// destination already holds; every non-manifest blob they list is
	// omitted. Empty means a full bundle.
	Baselines []string
	// DryRun stops after planning: nothing is written.
	DryRun bool
	// Now stamps ferry.json; nil means time.Now.
	Now func() time.Time
}

// ExportResult is what Export planned and did.
type ExportResult struct {
	Plan    *Plan
	Summary Summary
}

// Export pulls the images into a directory bundle. It resolves every
// reference, walks every graph (all platforms, nested indexes), and writes
// each blob once, verified as it streams in. Blobs already in the directory
// from an interrupted run are verified and reused. index.json and ferry.json
// are written last, so a bundle is complete exactly when they are there.
func Export(ctx context.Context, opts ExportOptions) (*ExportResult, error) {
	return export(ctx, opts)
}

func export(ctx context.Context, opts ExportOptions) (*ExportResult, error) {
	start := time.Now()
	prog := progressOrNone(opts.Progress)
	if len(opts.References) == 0 {
		return nil, errors.New("no images to export: name at least one reference or use --images-file")
	}
	if opts.Output == "" {
		return nil, errors.New("no output: give -o DIRECTORY")
	}
	refs, err := parseReferences(opts.References)
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, r := range refs {
		hosts = append(hosts, r.Registry)
	}
	c, err := registry.New(registry.Source, opts.Source, hosts...)
	if err != nil {
		return nil, err
	}
	jobs := jobsOrDefault(opts.Jobs)
	base, err := delta.Load(opts.Baselines...)
	if err != nil {
		return nil, err
	}

	// 1. resolve, 2. plan
	plan, graph, err := planExport(ctx, c, refs, jobs)
	if err != nil {
		return nil, err
	}
	if len(opts.Baselines) > 0 {
		plan.subtract(base)
	}
	res := &ExportResult{Plan: plan}
	res.Summary.Images = len(plan.Images)
	res.Summary.Blobs = len(plan.Blobs)
	for _, b := range plan.Blobs {
		res.Summary.Bytes += b.Desc.Size
		if !b.Included {
			res.Summary.Omitted++
			res.Summary.OmittedBytes += b.Desc.Size
		}
	}
	if opts.DryRun {
		res.Summary.Duration = time.Since(start)
		return res, nil
	}

	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	creator := opts.Creator
	if creator == "" {
		creator = "ferry"
	}
	meta := plan.BundleManifest(creator, now())
	total, _ := plan.IncludedBytes()
	prog.Start("export", total)
	if form := outputForm(opts); form == formDir {
		err = exportDir(ctx, c, graph, plan, meta, opts.Output, jobs, prog, &res.Summary)
	} else {
		err = exportTar(ctx, c, graph, plan, meta, opts, form, prog, &res.Summary)
	}
	prog.Done()
	if err != nil {
		return nil, err
	}
	res.Summary.Duration = time.Since(start)
	return res, nil
}

func parseReferences(in []string) ([]Reference, error) {
	seen := map[string]bool{}
	var out []Reference
	for _, s := range in {
		r, err := ParseReference(s)
		if err != nil {
			return nil, err
		}
		if seen[r.String()] {
			continue
		}
		seen[r.String()] = true
		out = append(out, r)
	}
	return out, nil
}

// planExport resolves every reference at its source and walks its graph.
func planExport(ctx context.Context, c *registry.Client, refs []Reference, jobs int) (*Plan, *layout.Graph, error) {
	images := make([]PlannedImage, len(refs))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(jobs)
	for i, ref := range refs {
		eg.Go(func() error {
			repo, err := c.Repository(ref.Registry, ref.Repository)
			if err != nil {
				return err
			}
			desc, err := repo.Resolve(ectx, ref.Target())
			if err != nil {
				return c.Wrap(registry.OpResolve, ref.String(), err)
			}
			if ref.Digest != "" && desc.Digest != ref.Digest {
				return c.Wrap(registry.OpResolve, ref.String(), fmt.Errorf("the registry answered with %s", desc.Digest))
			}
			images[i] = PlannedImage{Source: ref, Root: ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, nil, err
	}
	graph := layout.NewGraph()
	err := walkImages(ctx, graph, images, jobs, func(img PlannedImage) (layout.Fetcher, error) {
		return c.Repository(img.Source.Registry, img.Source.Repository)
	})
	if err != nil {
		return nil, nil, err
	}
	sort.SliceStable(images, func(i, j int) bool { return images[i].Source.String() < images[j].Source.String() })
	return &Plan{Images: images, Blobs: collectBlobs(images)}, graph, nil
}

// exportDir writes the bundle as a directory: blobs in parallel (3),
// then index.json and ferry.json (4).
func exportDir(ctx context.Context, c *registry.Client, graph *layout.Graph, plan *Plan, meta *spec.Manifest, out string, jobs int, prog Progress, sum *Summary) error {
	dir, err := layout.CreateDir(out)
	if err != nil {
		return err
	}
	// A re-run must not leave the metadata of an earlier, complete run in
	// place while blobs change under it.
	for _, name := range []string{layout.FileBundle, layout.FileIndex} {
		if err := os.Remove(filepath.Join(out, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := transferToDir(ctx, c, graph, dir, plan, jobs, prog, sum); err != nil {
		return err
	}
	if err := pruneDir(out, plan); err != nil {
		return err
	}
	if err := dir.Sync(); err != nil {
		return err
	}
	if err := dir.WriteIndex(plan.index()); err != nil {
		return err
	}
	return dir.WriteBundleManifest(meta)
}

// transferToDir writes every included blob of the plan into dir: manifests
// from the graph's memory, other blobs streamed from their first source
// repository. Blobs already present are hashed and reused.
func transferToDir(ctx context.Context, c *registry.Client, graph *layout.Graph, dir *layout.Dir, plan *Plan, jobs int, prog Progress, sum *Summary) error {
	var todo []PlannedBlob
	for _, b := range plan.Blobs {
		if b.Included {
			todo = append(todo, b)
		}
	}
	// Largest first keeps every worker busy to the end.
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].Desc.Size > todo[j].Desc.Size })
	type outcome struct {
		moved bool
		size  int64
	}
	results := make([]outcome, len(todo))
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(jobs)
	for i, b := range todo {
		eg.Go(func() error {
			moved, err := ensureBlob(ctx, c, graph, dir, b, prog)
			if err != nil {
				return err
			}
			results[i] = outcome{moved, b.Desc.Size}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	for _, r := range results {
		if r.moved {
			sum.Transferred++
			sum.TransferredBytes += r.size
		} else {
			sum.Skipped++
			sum.SkippedBytes += r.size
		}
	}
	return nil
}

// ensureBlob makes blob b present and verified in dir; it reports whether
// it had to fetch it.
func ensureBlob(ctx context.Context, c *registry.Client, graph *layout.Graph, dir *layout.Dir, b PlannedBlob, prog Progress) (bool, error) {
	ok, err := dir.Exists(b.Desc)
	if err != nil && !errors.Is(err, layout.ErrSizeMismatch) {
		return false, err // a leftover of the wrong size is replaced below
	}
	if ok {
		if err := dir.CheckBlob(ctx, b.Desc); err == nil {
			prog.Add(b.Desc.Size)
			return false, nil
		} else if ctx.Err() != nil {
			return false, ctx.Err()
		}
		// A leftover that does not verify is replaced.
		path, _ := dir.BlobPath(b.Desc.Digest)
		prog.Logf("replacing %s: the copy in the bundle does not verify", b.Desc.Digest)
		if err := os.Remove(path); err != nil {
			return false, err
		}
	}
	if data, ok := graph.Manifest(b.Desc.Digest); ok {
		if err := dir.WriteBlob(ctx, b.Desc, bytes.NewReader(data)); err != nil {
			return false, fmt.Errorf("writing manifest %s: %w", b.Desc.Digest, err)
		}
		prog.Add(b.Desc.Size)
		return true, nil
	}
	return true, fetchInto(ctx, c, dir, b, prog)
}

// fetchInto streams a blob from its source into dir.
func fetchInto(ctx context.Context, c *registry.Client, dir *layout.Dir, b PlannedBlob, prog Progress) error {
	rc, from, err := openSource(ctx, c, b)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := dir.WriteBlob(ctx, b.Desc, countingReader{rc, prog}); err != nil {
		return c.Wrap(registry.OpFetchBlob, b.Desc.Digest.String()+" from "+from, err)
	}
	return nil
}

// openSource opens a blob at the first source repository that answers.
func openSource(ctx context.Context, c *registry.Client, b PlannedBlob) (io.ReadCloser, string, error) {
	var errs []error
	for _, src := range b.sources {
		repo, err := c.Repository(src.Registry, src.Repository)
		if err != nil {
			return nil, "", err
		}
		rc, err := registry.NewResumingReader(ctx, func() (io.ReadCloser, error) { return repo.Blobs().Fetch(ctx, b.Desc) })
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s: %w", src.Name(), err))
			continue
		}
		return rc, src.Name(), nil
	}
	return nil, "", c.Wrap(registry.OpFetchBlob, b.Desc.Digest.String(), errors.Join(errs...))
}

// pruneDir removes from the bundle's blob directory every file the plan does
// not include (left by an earlier export of other images, or temp files of
// an interrupted one), so the bundle holds exactly what ferry.json lists.
func pruneDir(root string, plan *Plan) error {
	keep := map[string]bool{}
	for _, b := range plan.Blobs {
		if b.Included {
			keep[layout.BlobName(b.Desc.Digest)] = true
		}
	}
	blobs := filepath.Join(root, "blobs")
	return filepath.WalkDir(blobs, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if keep[filepath.ToSlash(rel)] {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".ferry-tmp-") || d.Type().IsRegular() {
			return os.Remove(path)
		}
		return nil
	})
}
