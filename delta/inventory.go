package delta

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	ocireg "oras.land/oras-go/v2/registry"

	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/layout"
)

// ErrCatalogForbidden: the registry refuses _catalog (Harbor does for
// non-admins); name the repositories instead.
var ErrCatalogForbidden = errors.New("the registry does not allow listing repositories")

// InventoryOptions configure Inventory. Registry is required; the zero
// value of the rest lists the whole registry through _catalog, 4
// repositories at a time, silently.
type InventoryOptions struct {
	// Registry is the host[:port] to ask. Required.
	Registry string
	// Client says how to reach it.
	Client registry.Options
	// Prefix is the destination prefix (harbor.internal/MIRROR): only
	// repositories below it are listed, and it is stripped from the paths
	// written, so they are in source form as an export expects.
	Prefix string
	// Repositories, in source form, are listed instead of asking _catalog.
	Repositories []string
	// Jobs bounds how many repositories are read at once; 0 means
	// layout.DefaultJobs.
	Jobs int
	// Progress is told of skipped tags and repositories (Logf); nil means
	// silence. bundle.Progress has it.
	Progress interface {
		Logf(format string, args ...any)
	}
	// Now stamps the file; nil means time.Now.
	Now func() time.Time
}

// WriteInventory runs Inventory and saves the baseline to path
// atomically.
func WriteInventory(ctx context.Context, path string, opts InventoryOptions) (*spec.Manifest, error) {
	m, err := Inventory(ctx, opts)
	if err != nil {
		return nil, err
	}
	return m, Save(path, m)
}

// Inventory asks a registry what it holds: every repository (below the
// prefix), every tag, every manifest and the blobs they reference. The
// result is a baseline: a spec.Manifest listing each blob with the
// repositories it lives in, none of them included.
func Inventory(ctx context.Context, opts InventoryOptions) (*spec.Manifest, error) {
	c, err := registry.New(registry.Destination, opts.Client, opts.Registry)
	if err != nil {
		return nil, err
	}
	reg, err := c.Registry(opts.Registry)
	if err != nil {
		return nil, err
	}
	inv := &inventory{c: c, host: opts.Registry, graph: layout.NewGraph(), blobs: map[digest.Digest]*spec.Blob{}, logf: func(string, ...any) {}}
	if opts.Progress != nil {
		inv.logf = opts.Progress.Logf
	}
	m, err := inv.run(ctx, reg, opts)
	return m, c.Wrap(registry.OpList, opts.Registry, err)
}

func (inv *inventory) run(ctx context.Context, reg ocireg.Registry, opts InventoryOptions) (*spec.Manifest, error) {
	prefix := strings.Trim(opts.Prefix, "/")
	repos := opts.Repositories
	if len(repos) == 0 {
		var err error
		if repos, err = catalog(ctx, reg, prefix); err != nil {
			return nil, err
		}
	}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(layout.JobsOrDefault(opts.Jobs))
	for _, src := range repos {
		eg.Go(func() error {
			return inv.repository(ectx, src, destPath(prefix, src))
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	m := &spec.Manifest{MediaType: spec.MediaType, Created: now().UTC().Truncate(time.Second), Creator: "ferry inventory", Images: inv.images, Referrers: inv.referrers}
	for _, b := range inv.blobs {
		// Repositories read in parallel may interleave: each once.
		sort.Strings(b.Repositories)
		b.Repositories = slices.Compact(b.Repositories)
		m.Blobs = append(m.Blobs, *b)
	}
	m.Sort()
	return m, nil
}

func destPath(prefix, src string) string {
	if prefix == "" {
		return src
	}
	return prefix + "/" + src
}

// catalog lists the repositories below prefix, in source form.
func catalog(ctx context.Context, reg ocireg.Registry, prefix string) ([]string, error) {
	var out []string
	err := reg.Repositories(ctx, "", func(repos []string) error {
		for _, r := range repos {
			switch {
			case prefix == "":
				out = append(out, r)
			case strings.HasPrefix(r, prefix+"/"):
				out = append(out, strings.TrimPrefix(r, prefix+"/"))
			}
		}
		return nil
	})
	if st := registry.Status(err); st == http.StatusUnauthorized || st == http.StatusForbidden || st == http.StatusNotFound {
		return nil, fmt.Errorf("%w (%v): name the repositories with --repos or --images-file", ErrCatalogForbidden, err)
	}
	if err != nil {
		return nil, fmt.Errorf("listing repositories: %w", err)
	}
	sort.Strings(out)
	return out, nil
}

type inventory struct {
	c     *registry.Client
	host  string
	graph *layout.Graph
	logf  func(string, ...any)

	mu        sync.Mutex
	blobs     map[digest.Digest]*spec.Blob
	images    []spec.Image
	referrers []spec.Referrer
}

// repository records every tag of one repository, the graphs below them,
// and what refers to their manifests (cosign's tags, the referrers API or
// its tag schema), recursively.
func (inv *inventory) repository(ctx context.Context, src, dest string) error {
	repo, err := inv.c.Repository(inv.host, dest)
	if err != nil {
		return err
	}
	tags, err := inv.c.Tags(ctx, repo)
	if err != nil {
		return err
	}
	if tags == nil {
		inv.logf("skipping %s: no such repository, or no tags", dest)
		return nil
	}
	var subjects []ocispec.Descriptor
	for _, tag := range tags {
		if isReferrersTag(tag) {
			continue // an index of referrers: found below, through their subjects
		}
		root, err := repo.Resolve(ctx, tag)
		if err != nil {
			return inv.c.Wrap(registry.OpResolve, dest+":"+tag, err)
		}
		descs, err := inv.graph.Walk(ctx, repo, root)
		if errors.Is(err, layout.ErrUnsupported) || errors.Is(err, layout.ErrInvalidManifest) {
			inv.logf("skipping %s:%s: %v", dest, tag, err)
			continue
		}
		if err != nil {
			return inv.c.Wrap(registry.OpReadGraph, dest+":"+tag, err)
		}
		inv.record(src, descs)
		if subject, ok := registry.CosignSubject(tag); ok {
			inv.addReferrer(spec.Referrer{Repository: src, Subject: subject, Descriptor: root, Tag: tag})
			continue
		}
		inv.mu.Lock()
		inv.images = append(inv.images, spec.Image{Reference: src + ":" + tag, Digest: root.Digest, MediaType: root.MediaType})
		inv.mu.Unlock()
		for _, d := range descs {
			if layout.IsManifest(d.MediaType) {
				subjects = append(subjects, *d)
			}
		}
	}
	return inv.referrersOf(ctx, repo, src, subjects)
}

// referrersOf records what refers to subjects in repo, and what refers to
// those, each once.
func (inv *inventory) referrersOf(ctx context.Context, repo *registry.Repository, src string, subjects []ocispec.Descriptor) error {
	seen := map[digest.Digest]bool{}
	for depth := 0; len(subjects) > 0 && depth <= layout.MaxDepth; depth++ {
		var next []ocispec.Descriptor
		for _, s := range subjects {
			if seen[s.Digest] {
				continue
			}
			seen[s.Digest] = true
			found, err := inv.c.Referrers(ctx, repo, s)
			if err != nil {
				return err
			}
			for _, d := range found {
				descs, err := inv.graph.Walk(ctx, repo, d)
				if err != nil {
					inv.logf("skipping referrer %s of %s in %s: %v", d.Digest, s.Digest, repo.Reference.Repository, err)
					continue
				}
				inv.record(src, descs)
				inv.addReferrer(spec.Referrer{Repository: src, Subject: s.Digest, Descriptor: d})
				next = append(next, d)
			}
		}
		subjects = next
	}
	return nil
}

func (inv *inventory) addReferrer(r spec.Referrer) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.referrers = append(inv.referrers, r)
}

// record notes that src holds every blob of descs.
func (inv *inventory) record(src string, descs []*ocispec.Descriptor) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for _, d := range descs {
		b, ok := inv.blobs[d.Digest]
		if !ok {
			b = &spec.Blob{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType}
			inv.blobs[d.Digest] = b
		}
		// A repository's tags come one after another: the last one noted
		// is the one to compare with (linear, however many share a blob).
		if n := len(b.Repositories); n == 0 || b.Repositories[n-1] != src {
			b.Repositories = append(b.Repositories, src)
		}
	}
}

// isReferrersTag reports whether tag is the referrers tag schema's:
// <alg>-<hex>, exactly.
func isReferrersTag(tag string) bool {
	alg, hex, ok := strings.Cut(tag, "-")
	return ok && digest.NewDigestFromEncoded(digest.Algorithm(alg), hex).Validate() == nil
}
