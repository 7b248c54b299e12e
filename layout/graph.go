package layout

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxDepth bounds how deeply indexes may nest. Real images nest one or two
// levels; anything deeper is malformed or hostile.
const MaxDepth = 8

// Graph caches the manifests and indexes read while walking image graphs,
// so that a manifest shared by several roots is fetched and parsed once.
// It is safe for concurrent use.
type Graph struct {
	mu      sync.Mutex
	nodes   map[digest.Digest]*node
	configs map[digest.Digest]bool
	// reread, when set, is where the manifests' bytes are read again
	// (Bytes): the graph keeps their children, not their bytes.
	reread Fetcher
	// spool, when set, is where the manifests' bytes go as they are read
	// (NewSpooledGraph), and reread reads them from.
	spool *spool
	// canonical, when set, returns the copy of a digest to keep.
	canonical func(digest.Digest) digest.Digest
	// mediaTypes holds one copy of each media type the children have: a
	// handful of strings, each repeated by every manifest (signatures' and
	// SBOMs' as much as layers').
	mediaTypes map[string]string
}

// ShareDigests makes the graph keep, for each digest its manifests
// reference, the copy canonical returns (a bundle's ferry.json already
// holds one of each) rather than one decoded from every manifest. Call
// it before the first walk.
func (g *Graph) ShareDigests(canonical func(digest.Digest) digest.Digest) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.canonical = canonical
}

type node struct {
	data     []byte
	children []ocispec.Descriptor
}

// IsConfig reports whether d is the config of a manifest the graph has read.
func (g *Graph) IsConfig(d digest.Digest) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.configs[d]
}

// NewGraph returns an empty graph that keeps the bytes of every manifest
// it reads.
func NewGraph() *Graph {
	return &Graph{nodes: map[digest.Digest]*node{}, configs: map[digest.Digest]bool{}, mediaTypes: map[string]string{}}
}

// NewGraphOver returns an empty graph over a bundle that can be read
// again at random (a directory): it keeps each manifest's children but
// not its bytes, which Bytes reads again from f, verified. An import of
// tens of thousands of images then holds no copy of the manifests it has
// checked, only of the few it is sending.
func NewGraphOver(f Fetcher) *Graph {
	g := NewGraph()
	g.reread = f
	return g
}

// NewSpooledGraph returns an empty graph that keeps each manifest's
// children in memory and its bytes in a scratch file in dir (the system's
// temporary directory when dir is empty), from which Bytes reads them
// again, verified: an export of tens of thousands of images holds none of
// their manifests between reading them and writing them into the bundle.
// Close removes the file.
func NewSpooledGraph(dir string) (*Graph, error) {
	s, err := newSpool(dir)
	if err != nil {
		return nil, err
	}
	g := NewGraph()
	g.spool, g.reread = s, s
	return g, nil
}

// Close lets go of everything the graph holds, and of a spooled graph's
// scratch file (NewSpooledGraph): the graph is empty from then on. It can
// be called more than once.
func (g *Graph) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nodes, g.configs, g.mediaTypes = map[digest.Digest]*node{}, map[digest.Digest]bool{}, map[string]string{}
	if g.spool == nil {
		return nil
	}
	err := g.spool.close()
	g.spool, g.reread = nil, nil
	return err
}

// Has reports whether the graph has read the manifest or index d.
func (g *Graph) Has(d digest.Digest) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.nodes[d]
	return ok
}

// Bytes returns the bytes of a manifest or index the graph has read: those
// it holds, or, for a graph over a bundle (NewGraphOver) or a spooled one
// (NewSpooledGraph), those read again and verified against desc.
func (g *Graph) Bytes(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if data, ok := g.Manifest(desc.Digest); ok {
		return data, nil
	}
	if g.reread == nil || !g.Has(desc.Digest) {
		return nil, fmt.Errorf("manifest %s: %w: the graph has not read it", desc.Digest, ErrBlobNotFound)
	}
	return ReadManifest(ctx, g.reread, desc)
}

// Manifest returns the bytes of a manifest or index the graph has read and
// holds; a graph over a bundle (NewGraphOver) holds none but those given
// to Add, and a spooled one (NewSpooledGraph) none at all.
func (g *Graph) Manifest(d digest.Digest) ([]byte, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	n, ok := g.nodes[d]
	if !ok || n.data == nil {
		return nil, false
	}
	return n.data, true
}

// Add puts a manifest or index in the graph, as if it had been read: one
// ferry made itself (a narrowed index) or one fetched along with its
// descriptor (a tag resolved by GET). The bytes must match desc; a later
// Walk from it reads nothing more for it.
func (g *Graph) Add(desc ocispec.Descriptor, data []byte) error {
	if digest.FromBytes(data) != desc.Digest || int64(len(data)) != desc.Size {
		return fmt.Errorf("manifest %s: %w: the bytes do not match their descriptor", desc.Digest, ErrInvalidManifest)
	}
	_, err := g.store(desc, data, true)
	return err
}

// store parses a manifest's verified bytes and keeps its children, noting
// its config, and its bytes when keep is set: in memory, or in a spooled
// graph's scratch file, before any walk can ask for them.
func (g *Graph) store(desc ocispec.Descriptor, data []byte, keep bool) ([]ocispec.Descriptor, error) {
	children, err := Children(desc, data)
	if err != nil {
		return nil, err
	}
	if g.spool != nil && keep {
		if err := g.spool.put(desc, data); err != nil {
			return nil, err
		}
		keep = false
	}
	if !keep {
		data = nil
	}
	// Walks return pointers to these: each child keeps what identifies
	// the blob (and its URLs, if foreign), not its annotations or platform.
	for i, c := range children {
		children[i] = ocispec.Descriptor{MediaType: c.MediaType, Digest: c.Digest, Size: c.Size, URLs: c.URLs}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range children {
		if g.canonical != nil {
			children[i].Digest = g.canonical(children[i].Digest)
		}
		mt, ok := g.mediaTypes[children[i].MediaType]
		if !ok {
			mt = children[i].MediaType
			g.mediaTypes[mt] = mt
		}
		children[i].MediaType = mt
	}
	g.nodes[desc.Digest] = &node{data: data, children: children}
	if !IsIndex(desc.MediaType) && desc.MediaType != mediaTypeOCIArtifact && len(children) > 0 {
		g.configs[children[0].Digest] = true
	}
	return children, nil
}

// Children returns the children of a manifest or index the graph has read.
func (g *Graph) Children(d digest.Digest) []ocispec.Descriptor {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n, ok := g.nodes[d]; ok {
		return n.children
	}
	return nil
}

// Walk reads the graph below root through f and returns every descriptor
// reachable from it, each once, children before parents and root last: the
// order in which they must be pushed. Only manifests and indexes are fetched
// (verified against their descriptors); configs and layers are listed, not
// read. Each descriptor has its media type, digest, size and URLs only;
// those below root point into the graph, shared by every walk that reaches
// them (thousands of images hold pointers, not copies): never change one.
func (g *Graph) Walk(ctx context.Context, f Fetcher, root ocispec.Descriptor) ([]*ocispec.Descriptor, error) {
	return g.WalkFrom(ctx, f, &ocispec.Descriptor{MediaType: root.MediaType, Digest: root.Digest, Size: root.Size, URLs: root.URLs})
}

// WalkFrom is Walk with root itself, not a copy, as the last descriptor
// returned, with whatever fields the caller left in it: a report of
// thousands of images keeps each root once, in its image. The caller must
// not change *root, or move it, while the walk's result is used.
func (g *Graph) WalkFrom(ctx context.Context, f Fetcher, root *ocispec.Descriptor) ([]*ocispec.Descriptor, error) {
	var out []*ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	var visit func(desc *ocispec.Descriptor, depth int, path []digest.Digest) error
	visit = func(desc *ocispec.Descriptor, depth int, path []digest.Digest) error {
		if seen[desc.Digest] {
			return nil
		}
		for _, p := range path {
			if p == desc.Digest {
				return fmt.Errorf("manifest %s: %w: it refers to itself through %v", desc.Digest, ErrInvalidManifest, path)
			}
		}
		if depth > MaxDepth && IsManifest(desc.MediaType) {
			return fmt.Errorf("manifest %s: %w: indexes nested more than %d deep", desc.Digest, ErrInvalidManifest, MaxDepth)
		}
		if IsManifest(desc.MediaType) {
			children, err := g.children(ctx, f, *desc)
			if err != nil {
				return err
			}
			for i := range children {
				if err := visit(&children[i], depth+1, append(path, desc.Digest)); err != nil {
					return err
				}
			}
		}
		seen[desc.Digest] = true
		out = append(out, desc)
		return nil
	}
	if err := ValidateDescriptor(*root); err != nil {
		return nil, err
	}
	if !IsManifest(root.MediaType) {
		return nil, fmt.Errorf("%s: %w: media type %q is not a manifest or index", root.Digest, ErrUnsupported, root.MediaType)
	}
	if err := visit(root, 0, nil); err != nil {
		return nil, err
	}
	return slices.Clip(out), nil
}

func (g *Graph) children(ctx context.Context, f Fetcher, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	g.mu.Lock()
	n, ok := g.nodes[desc.Digest]
	g.mu.Unlock()
	if ok {
		return n.children, nil
	}
	if h, ok := f.(heldManifests); ok {
		if data, ok := h.heldManifest(desc.Digest); ok && int64(len(data)) == desc.Size {
			// Verified as it was read: shared, not copied, unless the
			// graph reads it again when asked.
			return g.store(desc, data, g.keeps())
		}
	}
	data, err := ReadManifest(ctx, f, desc)
	if err != nil {
		return nil, err
	}
	return g.store(desc, data, g.keeps())
}

// keeps reports whether the graph keeps the bytes it reads: not when it
// reads them again from a bundle (NewGraphOver).
func (g *Graph) keeps() bool {
	return g.reread == nil || g.spool != nil
}

// heldManifests is a Fetcher that holds manifests in memory, each verified
// against its digest when it was read (a tarball's head): the graph takes
// those bytes as they are rather than a copy of each.
type heldManifests interface {
	heldManifest(d digest.Digest) ([]byte, bool)
}
