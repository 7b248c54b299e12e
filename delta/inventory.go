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
	m, err := inventoryOf(ctx, reg, opts)
	return m, c.Wrap(registry.OpList, opts.Registry, err)
}

func inventoryOf(ctx context.Context, reg ocireg.Registry, opts InventoryOptions) (*spec.Manifest, error) {
	prefix := strings.Trim(opts.Prefix, "/")
	repos := opts.Repositories
	if len(repos) == 0 {
		var err error
		if repos, err = catalog(ctx, reg, prefix); err != nil {
			return nil, err
		}
	}
	jobs := layout.JobsOrDefault(opts.Jobs)
	logf := func(string, ...any) {}
	if opts.Progress != nil {
		logf = opts.Progress.Logf
	}
	inv := &inventory{blobs: map[digest.Digest]*spec.Blob{}}
	graph := layout.NewGraph()
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(jobs)
	for _, src := range repos {
		eg.Go(func() error {
			return inv.repository(ectx, reg, graph, src, destPath(prefix, src), logf)
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	m := &spec.Manifest{MediaType: spec.MediaType, Created: now().UTC().Truncate(time.Second), Creator: "ferry inventory", Images: inv.images}
	for _, b := range inv.blobs {
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
	mu     sync.Mutex
	blobs  map[digest.Digest]*spec.Blob
	images []spec.Image
}

// repository records every tag of one repository and the graphs below them.
func (inv *inventory) repository(ctx context.Context, reg ocireg.Registry, graph *layout.Graph, src, dest string, logf func(string, ...any)) error {
	repo, err := reg.Repository(ctx, dest)
	if err != nil {
		return err
	}
	var tags []string
	err = repo.Tags(ctx, "", func(ts []string) error {
		tags = append(tags, ts...)
		return nil
	})
	if registry.Status(err) == http.StatusNotFound {
		logf("skipping %s: no such repository", dest)
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing tags of %s: %w", dest, err)
	}
	for _, tag := range tags {
		root, err := repo.Resolve(ctx, tag)
		if err != nil {
			return fmt.Errorf("resolving %s:%s: %w", dest, tag, err)
		}
		descs, err := graph.Walk(ctx, repo, root)
		if errors.Is(err, layout.ErrUnsupported) || errors.Is(err, layout.ErrInvalidManifest) {
			logf("skipping %s:%s: %v", dest, tag, err)
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s:%s: %w", dest, tag, err)
		}
		inv.mu.Lock()
		inv.images = append(inv.images, spec.Image{Reference: src + ":" + tag, Digest: root.Digest, MediaType: root.MediaType})
		for _, d := range descs {
			b, ok := inv.blobs[d.Digest]
			if !ok {
				b = &spec.Blob{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType}
				inv.blobs[d.Digest] = b
			}
			if !slices.Contains(b.Repositories, src) {
				b.Repositories = append(b.Repositories, src)
			}
		}
		inv.mu.Unlock()
	}
	return nil
}
