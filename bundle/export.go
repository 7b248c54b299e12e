package bundle

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
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
	// Jobs bounds how many blobs download at once; 0 means
	// layout.DefaultJobs.
	Jobs int
	// Progress receives progress events; nil means none.
	Progress Progress
	// Creator is written to ferry.json; empty means "ferry".
	Creator string
	// Baselines are ferry.json or inventory files listing blobs the
	// destination already holds; every non-manifest blob they list is
	// omitted. Empty means a full bundle.
	Baselines []string
	// SignKey, when set, signs ferry.json: ferry.json.sig beside it (a
	// directory) or right after it (a tarball). Nil writes no signature.
	SignKey crypto.Signer
	// IncludeForeign carries foreign and non-distributable layers too,
	// fetched from the source registry, else from their URLs. False leaves
	// them out (the manifest travels; the runtime fetches them), as skopeo
	// and regctl do.
	IncludeForeign bool
	// Platforms, when not empty, are the only platforms of a multi-arch
	// image that travel; empty carries them all.
	Platforms []ocispec.Platform
	// PlatformMode says what a multi-arch image whose platforms are
	// narrowed becomes; empty means NewIndex.
	PlatformMode PlatformMode
	// Config, when set, is a mirror configuration (skopeo sync's format):
	// its images are exported besides References, with its per-registry
	// platforms and referrers settings.
	Config *MirrorConfig
	// NoReferrers leaves out the signatures, attestations, SBOMs and other
	// artifacts that refer to the images. False carries them all.
	NoReferrers bool
	// DryRun stops after planning: nothing is written.
	DryRun bool
	// Now stamps ferry.json; nil means time.Now.
	Now func() time.Time
}

// ExportResult is what Export planned and did.
type ExportResult struct {
	Plan    *Plan
	Summary ExportSummary
	// Entries says, per repository of a mirror configuration, which tags
	// matched and which were excluded, and why.
	Entries []EntryReport
}

// Export pulls the images into a bundle. It resolves every reference, walks
// every graph (all platforms, nested indexes), and writes each blob once,
// verified as it streams in. Blobs already in a directory from an
// interrupted run are verified and reused. index.json and ferry.json are
// written last, so a bundle is complete exactly when they are there.
func Export(ctx context.Context, opts ExportOptions) (*ExportResult, error) {
	start := time.Now()
	perRef, entries, err := resolveConfig(ctx, &opts)
	if err != nil {
		return nil, err
	}
	if len(opts.References) == 0 {
		return nil, fmt.Errorf("%w: no images to export: name at least one reference, use --images-file, or a --config that selects some", ErrInvalidOption)
	}
	if opts.Output == "" {
		return nil, fmt.Errorf("%w: no output: give -o DIRECTORY", ErrInvalidOption)
	}
	refs, err := parseReferences(opts.References)
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, r := range refs {
		hosts = append(hosts, r.Registry)
	}
	if opts.Source.Log == nil {
		opts.Source.Log = progressOrNone(opts.Progress).Logf
	}
	c, err := registry.New(registry.Source, opts.Source, hosts...)
	if err != nil {
		return nil, err
	}
	base, err := delta.Load(opts.Baselines...)
	if err != nil {
		return nil, err
	}
	jobs := layout.JobsOrDefault(opts.Jobs)

	// 1. resolve, 2. plan
	prog := progressOrNone(opts.Progress)
	plan, graph, err := planExport(ctx, c, refs, jobs, "")
	if err != nil {
		return nil, err
	}
	defer graph.Close()
	sel := selection{c: c, graph: graph, opts: opts, perRef: perRef, base: base, jobs: jobs, logf: prog.Logf}
	if err := sel.apply(ctx, plan); err != nil {
		return nil, err
	}
	plan.Blobs = collectBlobs(plan.Images, plan.Referrers)
	for i := range plan.Blobs {
		if plan.Blobs[i].Foreign && !opts.IncludeForeign {
			plan.Blobs[i].Included = false
		}
	}
	if len(opts.Baselines) > 0 {
		plan.subtract(base)
	}
	res := &ExportResult{Plan: plan, Summary: plan.summary(), Entries: entries}
	if !opts.DryRun {
		// 3. transfer, 4. commit
		e := &exporter{c: c, graph: graph, plan: plan, jobs: jobs, prog: prog, sum: &res.Summary}
		if err := e.write(ctx, opts); err != nil {
			return nil, err
		}
	}
	res.Summary.Duration = time.Since(start)
	return res, nil
}

// sameTagTwice refuses a plan in which one tag names two images
// (app:pinned@A and app:pinned@B): at any destination one would take the
// tag from the other.
func sameTagTwice(images []PlannedImage) error {
	seen := map[string]PlannedImage{}
	var clashes []string
	for _, img := range images {
		if img.Source.Tag == "" {
			continue
		}
		key := img.Source.Name() + ":" + img.Source.Tag
		if prev, ok := seen[key]; ok && prev.Root.Digest != img.Root.Digest {
			clashes = append(clashes, fmt.Sprintf("%s is %s and %s", key, prev.Root.Digest, img.Root.Digest))
		}
		seen[key] = img
	}
	if len(clashes) > 0 {
		return fmt.Errorf("%w (%w): one tag, two images; the destination can hold one:\n  - %s\nname each by digest alone (app@sha256:…), or give them different tags at the source",
			ErrTagCollision, ErrInvalidReference, strings.Join(clashes, "\n  - "))
	}
	return nil
}

// resolveConfig adds to opts.References the images a mirror configuration
// selects, and returns each one's own settings, by reference, and what
// each entry matched.
func resolveConfig(ctx context.Context, opts *ExportOptions) (map[string]Picked, []EntryReport, error) {
	perRef := map[string]Picked{}
	if opts.Config == nil {
		return perRef, nil, nil
	}
	picked, reports, err := opts.Config.Resolve(ctx, opts.Source)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range picked {
		opts.References = append(opts.References, p.Reference)
		if r, err := ParseReference(p.Reference); err == nil {
			perRef[r.String()] = p
		}
	}
	return perRef, reports, nil
}

// selection is what chooses what travels, beyond the references: the
// platforms asked for, and the referrers found.
type selection struct {
	c      *registry.Client
	graph  *layout.Graph
	opts   ExportOptions
	perRef map[string]Picked
	base   *delta.Baseline
	jobs   int
	logf   func(string, ...any)
}

// apply narrows multi-arch images to the platforms asked for, then finds
// what refers to what travels.
func (s selection) apply(ctx context.Context, plan *Plan) error {
	c, graph, opts, perRef, base, jobs := s.c, s.graph, s.opts, s.perRef, s.base, s.jobs
	var err error
	mode := opts.PlatformMode
	if mode == "" {
		mode = NewIndex
	}
	wants := func(img PlannedImage) []ocispec.Platform {
		if p, ok := perRef[img.Source.String()]; ok && len(p.Platforms) > 0 {
			return p.Platforms
		}
		return opts.Platforms
	}
	if err := selectPlatforms(ctx, graph, plan.Images, wants, mode); err != nil {
		return err
	}
	if !opts.NoReferrers {
		var withReferrers []PlannedImage
		for _, img := range plan.Images {
			if !perRef[img.Source.String()].NoReferrers {
				withReferrers = append(withReferrers, img)
			}
		}
		if plan.Referrers, err = discoverReferrers(ctx, c, graph, withReferrers, jobs, s.logf); err != nil {
			return err
		}
		plan.dropKnownReferrers(base)
		if err := countInapplicable(ctx, c, plan.Images); err != nil {
			return err
		}
	}
	return nil
}

// exporter carries one export's transfer and commit: where blobs come from,
// what the plan says, and what it has done so far.
type exporter struct {
	c     *registry.Client
	graph *layout.Graph
	plan  *Plan
	jobs  int
	prog  Progress
	sum   *ExportSummary
	// created stamps ferry.json and the tarball's entries.
	created time.Time
	// indexSize is index.json's size, counted before anything is written.
	indexSize int64
}

// write moves the plan's blobs into the bundle opts.Output names, in its
// form, and writes the metadata last.
func (e *exporter) write(ctx context.Context, opts ExportOptions) error {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	creator := opts.Creator
	if creator == "" {
		creator = "ferry"
	}
	m := e.plan.BundleManifest(creator, now())
	e.created = m.Created
	meta, err := e.metadata(m, opts.SignKey)
	if err != nil {
		return err
	}
	// What import would refuse is refused now, before a byte is written.
	// index.json is counted here and made when it is written.
	indexSize, err := spec.Count(e.encodeIndex)
	if err != nil {
		return err
	}
	e.indexSize = indexSize
	if indexSize > layout.MaxIndexSize || meta.size > spec.MaxSize {
		return fmt.Errorf("%w: index.json would be %s and ferry.json %s; a bundle reader takes at most %s and %s: export fewer images into each bundle",
			layout.ErrTooLarge, HumanBytes(indexSize), HumanBytes(meta.size), HumanBytes(layout.MaxIndexSize), HumanBytes(spec.MaxSize))
	}
	if err := e.checkRoom(opts, meta.size+indexSize+int64(len(meta.signature))); err != nil {
		return err
	}
	total, _ := e.plan.IncludedBytes()
	e.prog.Start("export", total)
	defer e.prog.Done()
	if form := outputForm(opts); form != formDir {
		return e.toTar(ctx, opts, form == formTarGz, meta)
	}
	// A directory gets its metadata last: made again then, the same bytes
	// (the same plan, stamped the same), rather than held through the
	// whole transfer (35 MiB of ferry.json at 30,000 images).
	return e.toDir(ctx, opts.Output, planID(m), func() (metadata, error) {
		return e.metadata(e.plan.BundleManifest(creator, e.created), opts.SignKey)
	})
}

// metadata is ferry.json for m, sized and signed with key (none when key
// is nil). An ECDSA signature is over its SHA-256, taken as it is encoded:
// the document is then encoded again as it is written (metadata.write),
// never held whole (35 MiB at 30,000 images). Ed25519 signs the message
// itself, so its bytes are kept.
func (e *exporter) metadata(m *spec.Manifest, key crypto.Signer) (metadata, error) {
	if _, ok := key.(ed25519.PrivateKey); ok {
		data, err := m.Marshal()
		if err != nil {
			return metadata{}, err
		}
		sig, err := signBytes(key, data)
		if err != nil {
			return metadata{}, err
		}
		return metadata{m: m, data: data, size: int64(len(data)), sum: digest.FromBytes(data), signature: sig}, nil
	}
	d := digest.Canonical.Digester()
	size, err := spec.Count(func(w io.Writer) error { return m.Encode(io.MultiWriter(w, d.Hash())) })
	if err != nil {
		return metadata{}, err
	}
	meta := metadata{m: m, size: size, sum: d.Digest()}
	if key != nil {
		if meta.signature, err = signDigest(key, meta.sum); err != nil {
			return metadata{}, err
		}
	}
	return meta, nil
}

// encodeIndex writes the plan's index.json, an entry at a time.
func (e *exporter) encodeIndex(w io.Writer) error {
	return layout.EncodeIndexOf(w, e.plan.indexLen(), e.plan.indexEntry)
}

// checkRoom refuses, before a byte is written, an output whose file system
// cannot hold the plan: its free space against the bytes still to write
// (what a resumed directory holds already is not counted), and its largest
// file (FAT32: 4 GiB - 1 byte) against the largest file the bundle makes.
// A .tar.gz is not judged: its size is known only once written.
func (e *exporter) checkRoom(opts ExportOptions, metadata int64) error {
	var need, largest int64
	form := outputForm(opts)
	dir, _ := layout.OpenDir(opts.Output)
	for _, b := range e.plan.Blobs {
		if !b.Included {
			continue
		}
		if form == formDir && dir != nil {
			if ok, err := dir.Exists(*b.Desc); ok && err == nil {
				continue
			}
		}
		need += b.Desc.Size
		largest = max(largest, b.Desc.Size)
		if form != formDir {
			need += 1024 // a tar header and its padding
		}
	}
	need += metadata + 4096
	switch {
	case form == formTarGz:
		return nil
	case form == formTar && opts.SplitSize > 0:
		largest = min(opts.SplitSize, need)
	case form == formTar:
		largest = need
	}
	return layout.CheckRoom(opts.Output, need, largest, opts.SplitSize > 0)
}

// metadata is what a bundle ends with: ferry.json (its manifest, and its
// bytes when they had to be kept to be signed), its size and digest, and
// its signature (nil when unsigned).
type metadata struct {
	m         *spec.Manifest
	data      []byte
	size      int64
	sum       digest.Digest
	signature []byte
}

// write writes ferry.json: its bytes, or its manifest encoded again, which
// must come out as the bytes that were sized and signed.
func (meta metadata) write(w io.Writer) error {
	if meta.data != nil {
		_, err := w.Write(meta.data)
		return err
	}
	d := digest.Canonical.Digester()
	if err := meta.m.Encode(io.MultiWriter(w, d.Hash())); err != nil {
		return err
	}
	if d.Digest() != meta.sum {
		return fmt.Errorf("writing %s: its bytes changed after they were signed", layout.FileBundle)
	}
	return nil
}

// copyBlob writes blob b through write: a manifest from the graph (read
// again from its scratch file, verified), anything else streamed from the
// first source repository that has it, counted as it goes. It is the one way an export moves a blob, whatever
// the bundle's form.
func (e *exporter) copyBlob(ctx context.Context, b PlannedBlob, write func(context.Context, ocispec.Descriptor, io.Reader) error) error {
	if e.graph.Has(b.Desc.Digest) {
		data, err := e.graph.Bytes(ctx, *b.Desc)
		if err != nil {
			return err
		}
		if err := write(ctx, *b.Desc, bytes.NewReader(data)); err != nil {
			return fmt.Errorf("writing manifest %s: %w", b.Desc.Digest, err)
		}
		e.prog.Add(b.Desc.Size)
		return nil
	}
	rc, from, err := openSource(ctx, e.c, b)
	if err != nil {
		return err
	}
	defer rc.Close()
	err = write(ctx, *b.Desc, countingReader{rc, e.prog})
	return e.c.Wrap(registry.OpFetchBlob, b.Desc.Digest.String()+" from "+from, err)
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

// planExport resolves every reference at its source and walks its graph,
// into a graph whose manifests are kept in a scratch file in scratch (the
// system's temporary directory when empty) until they go into the bundle.
func planExport(ctx context.Context, c *registry.Client, refs []Reference, jobs int, scratch string) (*Plan, *layout.Graph, error) {
	graph, err := layout.NewSpooledGraph(scratch)
	if err != nil {
		return nil, nil, err
	}
	plan, err := resolveAndWalk(ctx, c, graph, refs, jobs)
	if err != nil {
		graph.Close()
		return nil, nil, err
	}
	return plan, graph, nil
}

// resolveAndWalk resolves refs into images and walks their graphs.
func resolveAndWalk(ctx context.Context, c *registry.Client, graph *layout.Graph, refs []Reference, jobs int) (*Plan, error) {
	images := make([]PlannedImage, len(refs))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(jobs)
	for i, ref := range refs {
		eg.Go(func() error {
			repo, err := c.Repository(ref.Registry, ref.Repository)
			if err != nil {
				return err
			}
			desc, err := resolveRoot(ectx, repo, graph, ref.Target())
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
		return nil, err
	}
	err := walkImages(ctx, graph, images, jobs, func(img PlannedImage) (layout.Fetcher, error) {
		return c.Repository(img.Source.Registry, img.Source.Repository)
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(images, func(i, j int) bool { return images[i].Source.String() < images[j].Source.String() })
	if err := sameTagTwice(images); err != nil {
		return nil, err
	}
	return &Plan{Images: images}, nil
}

// resolveRoot asks the source for an image's root in one GET, not a HEAD
// and then a GET: the manifest comes with its descriptor and goes into the
// graph, verified against it, so the walk does not fetch it again. What the
// walk would refuse (not a manifest, over the cap) is left for it to refuse.
func resolveRoot(ctx context.Context, repo *registry.Repository, graph *layout.Graph, target string) (ocispec.Descriptor, error) {
	desc, rc, err := repo.FetchReference(ctx, target)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer rc.Close()
	if !layout.IsManifest(desc.MediaType) || desc.Size > layout.MaxManifestSize || layout.ValidateDescriptor(desc) != nil {
		return desc, nil
	}
	data := make([]byte, desc.Size)
	if _, err := io.ReadFull(rc, data); err != nil {
		return desc, fmt.Errorf("reading manifest %s: %w", desc.Digest, err)
	}
	return desc, graph.Add(desc, data)
}

// toDir writes the bundle as a directory: blobs in parallel (3), then
// index.json and ferry.json (4). However it ends, no background fsync of a
// blob outlives it.
func (e *exporter) toDir(ctx context.Context, out string, id digest.Digest, metadata func() (metadata, error)) error {
	if err := checkOutputDir(out, e.plan, id); err != nil {
		return err
	}
	dir, err := layout.CreateDir(out)
	if err != nil {
		return err
	}
	defer dir.Close()
	// A re-run must not leave the metadata of an earlier, complete run in
	// place while blobs change under it.
	for _, name := range []string{layout.FileSignature, layout.FileBundle, layout.FileIndex} {
		if err := os.Remove(filepath.Join(out, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := e.transferToDir(ctx, dir); err != nil {
		return err
	}
	// Every manifest is in the bundle: the metadata is made from the plan
	// alone, and the graph's children and scratch file need not be held
	// beside it.
	if err := e.graph.Close(); err != nil {
		return err
	}
	if err := pruneDir(out); err != nil {
		return err
	}
	if err := dir.Sync(); err != nil {
		return err
	}
	if err := dir.WriteIndexOf(e.plan.indexLen(), e.plan.indexEntry); err != nil {
		return err
	}
	meta, err := metadata()
	if err != nil {
		return err
	}
	if err := dir.WriteBundleFileFunc(meta.write); err != nil {
		return err
	}
	if meta.signature == nil {
		return nil
	}
	return dir.WriteSignature(meta.signature)
}

// transferToDir writes every included blob of the plan into dir, at most
// e.jobs at once. Blobs already present are hashed and reused.
func (e *exporter) transferToDir(ctx context.Context, dir *layout.Dir) error {
	var todo []*PlannedBlob // into the plan: no copy of thousands of entries
	for i := range e.plan.Blobs {
		if e.plan.Blobs[i].Included {
			todo = append(todo, &e.plan.Blobs[i])
		}
	}
	// Manifests first, from memory, which is then let go of; then largest
	// first, which keeps every worker busy to the end.
	sort.SliceStable(todo, func(i, j int) bool {
		if mi, mj := todo[i].Manifest(), todo[j].Manifest(); mi != mj {
			return mi
		}
		return todo[i].Desc.Size > todo[j].Desc.Size
	})
	moved := make([]bool, len(todo))
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(e.jobs)
	for i, b := range todo {
		eg.Go(func() error {
			var err error
			moved[i], err = e.ensureBlob(ctx, dir, *b)
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	for i, b := range todo {
		if moved[i] {
			e.sum.Transferred++
			e.sum.TransferredBytes += b.Desc.Size
		} else {
			e.sum.Skipped++
			e.sum.SkippedBytes += b.Desc.Size
		}
	}
	return nil
}

// ensureBlob makes blob b present and verified in dir; it reports whether
// it had to fetch it.
func (e *exporter) ensureBlob(ctx context.Context, dir *layout.Dir, b PlannedBlob) (bool, error) {
	ok, err := dir.Exists(*b.Desc)
	if err != nil && !errors.Is(err, layout.ErrSizeMismatch) {
		return false, err // a leftover of the wrong size is replaced below
	}
	if ok {
		if err := dir.CheckBlob(ctx, *b.Desc); err == nil {
			e.prog.Add(b.Desc.Size)
			return false, nil
		} else if ctx.Err() != nil {
			return false, ctx.Err()
		}
		// A leftover that does not verify is replaced.
		path, _ := dir.BlobPath(b.Desc.Digest)
		e.prog.Logf("replacing %s: the copy in the bundle does not verify", b.Desc.Digest)
		if err := os.Remove(path); err != nil {
			return false, err
		}
	}
	return true, e.copyBlob(ctx, b, dir.WriteBlob)
}

// openSource opens a blob at the first source repository that answers.
func openSource(ctx context.Context, c *registry.Client, b PlannedBlob) (io.ReadCloser, string, error) {
	var errs []error
	for _, s := range b.sources {
		src := Reference{Registry: s.registry, Repository: s.repository}
		repo, err := c.Repository(src.Registry, src.Repository)
		if err != nil {
			return nil, "", err
		}
		rc, err := registry.NewResumingReader(ctx, func() (io.ReadCloser, error) { return repo.Blobs().Fetch(ctx, *b.Desc) })
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s: %w", src.Name(), err))
			continue
		}
		return rc, src.Name(), nil
	}
	// A foreign layer lives at its URLs, not in the registry.
	for _, u := range b.Desc.URLs {
		rc, err := c.FetchURL(ctx, u)
		if err == nil {
			return rc, u, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, "", c.Wrap(registry.OpFetchBlob, b.Desc.Digest.String(), errors.Join(errs...))
}
