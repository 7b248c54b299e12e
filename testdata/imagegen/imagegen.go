// Package imagegen generates deterministic, valid OCI images for ferry's
// tests, demo and benchmark: real tar+gzip layers, configs whose diff_ids
// match, a base layer shared by every app, a multi-arch index and an index
// nested inside another. The same Options always give the same digests.
package imagegen

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/registry/remote"
)

// Options shape a generated set. The zero value is a small set (a few
// hundred KiB) suitable for unit tests.
type Options struct {
	// Apps is the number of application images (team/app<i>); 0 means 3.
	Apps int
	// LayerSize is the uncompressed size of each generated layer; 0 means 64 KiB.
	LayerSize int
	// Version changes every app's top layer and tag (v<Version>) while the
	// base layers stay the same: version 2 of a set is a delta of version 1.
	// 0 means 1.
	Version int
	// Compressible fills layers with text instead of random bytes.
	Compressible bool
	// Namespace, when set, is put in front of every repository path
	// ("text" → text/library/base), so that two sets can share a registry.
	Namespace string
	// Repositories, when set, spreads the apps over this many repositories
	// (team/app1 … team/app<Repositories>), several tags each
	// (v<Version>.0, v<Version>.1, …): a mirror's shape. 0 means one
	// repository per app, tagged v<Version>.
	Repositories int
	// Bases is the number of distinct base layers the apps share, app i
	// using base i mod Bases, each also tagged library/base:<n>. 0 means 1.
	Bases int
	// MultiArchEvery, when set, makes every n-th app an index of an amd64
	// and an arm64 image instead of a single manifest.
	MultiArchEvery int
}

// Image is one tagged image of a set.
type Image struct {
	Repository string // e.g. "team/app1"
	Tag        string
	Root       ocispec.Descriptor
}

// Reference is the image's reference at registry host.
func (i Image) Reference(host string) string {
	return host + "/" + i.Repository + ":" + i.Tag
}

// Set is a generated set of images and every blob they need.
type Set struct {
	Images []Image
	// Blobs holds every blob (manifests, configs, layers) by digest.
	Blobs map[digest.Digest][]byte
	// Graph lists, for each image root, every descriptor reachable from it,
	// children before parents, the root last.
	Graph map[digest.Digest][]ocispec.Descriptor
}

// Generate builds a set. It is deterministic.
func Generate(opts Options) (*Set, error) {
	if opts.Apps == 0 {
		opts.Apps = 3
	}
	if opts.LayerSize == 0 {
		opts.LayerSize = 64 << 10
	}
	if opts.Version == 0 {
		opts.Version = 1
	}
	if opts.Bases == 0 {
		opts.Bases = 1
	}
	g := &generator{opts: opts, set: &Set{Blobs: map[digest.Digest][]byte{}, Graph: map[digest.Digest][]ocispec.Descriptor{}}}

	bases, baseImg, err := g.bases()
	if err != nil {
		return nil, err
	}
	base := bases[0]
	for i := 1; i <= opts.Apps; i++ {
		if err := g.app(i, bases[i%len(bases)]); err != nil {
			return nil, err
		}
	}

	// A multi-arch image: one manifest per platform under an index.
	var platforms []ocispec.Descriptor
	for n, arch := range []string{"amd64", "arm64"} {
		l, err := g.layer("multi-"+arch, uint64(500+n))
		if err != nil {
			return nil, err
		}
		m, err := g.image(arch, base, l)
		if err != nil {
			return nil, err
		}
		m.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		platforms = append(platforms, m)
	}
	multi, err := g.index(platforms...)
	if err != nil {
		return nil, err
	}
	g.add("library/multi", "1", multi)

	// An index nested in an index, as some build tools produce.
	nested, err := g.index(multi, baseImg)
	if err != nil {
		return nil, err
	}
	g.add("library/nested", "1", nested)
	return g.set, nil
}

// bases makes the shared base layers, each tagged library/base:<n>, and
// returns them with the first base image.
func (g *generator) bases() ([]layerDesc, ocispec.Descriptor, error) {
	var layers []layerDesc
	var first ocispec.Descriptor
	for n := 1; n <= g.opts.Bases; n++ {
		name, seed := "base", uint64(1)
		if n > 1 {
			name, seed = fmt.Sprintf("base%d", n), uint64(1<<40+n)
		}
		l, err := g.layer(name, seed)
		if err != nil {
			return nil, first, err
		}
		img, err := g.image("amd64", l)
		if err != nil {
			return nil, first, err
		}
		if n == 1 {
			first = img
		}
		g.add("library/base", fmt.Sprint(n), img)
		layers = append(layers, l)
	}
	return layers, first, nil
}

// app makes application image i over base: one manifest, or an index of
// two platforms for every MultiArchEvery-th app.
func (g *generator) app(i int, base layerDesc) error {
	repo, tag := fmt.Sprintf("team/app%d", i), fmt.Sprintf("v%d", g.opts.Version)
	if r := g.opts.Repositories; r > 0 {
		repo, tag = fmt.Sprintf("team/app%d", (i-1)%r+1), fmt.Sprintf("v%d.%d", g.opts.Version, (i-1)/r)
	}
	archs := []string{"amd64"}
	if n := g.opts.MultiArchEvery; n > 0 && i%n == 0 {
		archs = append(archs, "arm64")
	}
	var platforms []ocispec.Descriptor
	for n, arch := range archs {
		name := fmt.Sprintf("app%d", i)
		if n > 0 {
			name += "-" + arch
		}
		top, err := g.layer(name, uint64(1000*i+g.opts.Version)+uint64(n)<<32)
		if err != nil {
			return err
		}
		m, err := g.image(arch, base, top)
		if err != nil {
			return err
		}
		m.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		platforms = append(platforms, m)
	}
	root := platforms[0]
	if len(platforms) > 1 {
		var err error
		if root, err = g.index(platforms...); err != nil {
			return err
		}
	}
	root.Platform = nil
	g.add(repo, tag, root)
	return nil
}

type generator struct {
	opts Options
	set  *Set
	// children records the direct children of each manifest and index.
	children map[digest.Digest][]ocispec.Descriptor
}

func (g *generator) put(mediaType string, data []byte) ocispec.Descriptor {
	d := digest.FromBytes(data)
	g.set.Blobs[d] = data
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

type layerDesc struct {
	desc   ocispec.Descriptor
	diffID digest.Digest
}

// layer makes a tar+gzip layer whose content depends only on name, seed and
// the options.
func (g *generator) layer(name string, seed uint64) (layerDesc, error) {
	rng := rand.New(rand.NewPCG(seed, uint64(g.opts.LayerSize)))
	content := make([]byte, g.opts.LayerSize)
	if g.opts.Compressible {
		words := []string{"registry ", "layer ", "ferry ", "image ", "blob ", "digest ", "\n"}
		for i := 0; i < len(content); {
			i += copy(content[i:], words[rng.IntN(len(words))])
		}
	} else {
		randomReader{rng}.Read(content)
	}
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	epoch := time.Unix(0, 0).UTC()
	files := []struct {
		name string
		body []byte
	}{
		{"etc/ferry-" + name + ".txt", []byte("generated by ferry imagegen: " + name + "\n")},
		{"opt/" + name + "/data.bin", content},
	}
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return layerDesc{}, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return layerDesc{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return layerDesc{}, err
	}
	diffID := digest.FromBytes(tarBuf.Bytes())
	var gzBuf bytes.Buffer
	// Random bytes do not compress: store them, as gzip does at its best.
	level := gzip.NoCompression
	if g.opts.Compressible {
		level = gzip.BestSpeed
	}
	zw, _ := gzip.NewWriterLevel(&gzBuf, level)
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return layerDesc{}, err
	}
	if err := zw.Close(); err != nil {
		return layerDesc{}, err
	}
	return layerDesc{desc: g.put(ocispec.MediaTypeImageLayerGzip, gzBuf.Bytes()), diffID: diffID}, nil
}

// image makes a config and a manifest over layers.
func (g *generator) image(arch string, layers ...layerDesc) (ocispec.Descriptor, error) {
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: arch},
		Config:   ocispec.ImageConfig{Env: []string{"PATH=/usr/bin:/bin"}},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	var layerDescs []ocispec.Descriptor
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
		layerDescs = append(layerDescs, l.desc)
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	cfgDesc := g.put(ocispec.MediaTypeImageConfig, cfgJSON)
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    layerDescs,
	}
	data, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := g.put(ocispec.MediaTypeImageManifest, data)
	g.record(desc, append([]ocispec.Descriptor{cfgDesc}, layerDescs...))
	return desc, nil
}

func (g *generator) index(manifests ...ocispec.Descriptor) (ocispec.Descriptor, error) {
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := g.put(ocispec.MediaTypeImageIndex, data)
	g.record(desc, manifests)
	return desc, nil
}

func (g *generator) record(parent ocispec.Descriptor, children []ocispec.Descriptor) {
	if g.children == nil {
		g.children = map[digest.Digest][]ocispec.Descriptor{}
	}
	g.children[parent.Digest] = children
}

func (g *generator) add(repo, tag string, root ocispec.Descriptor) {
	if g.opts.Namespace != "" {
		repo = g.opts.Namespace + "/" + repo
	}
	g.set.Images = append(g.set.Images, Image{Repository: repo, Tag: tag, Root: root})
	seen := map[digest.Digest]bool{}
	var all []ocispec.Descriptor
	var walk func(d ocispec.Descriptor)
	walk = func(d ocispec.Descriptor) {
		if seen[d.Digest] {
			return
		}
		seen[d.Digest] = true
		for _, c := range g.children[d.Digest] {
			walk(c)
		}
		all = append(all, ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size})
	}
	walk(root)
	g.set.Graph[root.Digest] = all
}

// Digests returns every digest reachable from the set's images, sorted.
func (s *Set) Digests() []digest.Digest {
	seen := map[digest.Digest]bool{}
	for _, descs := range s.Graph {
		for _, d := range descs {
			seen[d.Digest] = true
		}
	}
	out := make([]digest.Digest, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Push uploads every image of the set to the open, plain-HTTP registry at
// host, children before parents, tags last.
func (s *Set) Push(ctx context.Context, host string) error {
	return s.PushWith(ctx, func(name string) (*remote.Repository, error) {
		repo, err := remote.NewRepository(host + "/" + name)
		if err != nil {
			return nil, err
		}
		repo.PlainHTTP = true
		return repo, nil
	})
}

// PushWith is Push through repositories the caller sets up (auth, TLS).
// Images go 8 at a time (a scale corpus has thousands), each one's blobs
// and manifests before its tag.
func (s *Set) PushWith(ctx context.Context, repository func(name string) (*remote.Repository, error)) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(8)
	for _, img := range s.Images {
		eg.Go(func() error { return s.pushImage(ctx, repository, img) })
	}
	return eg.Wait()
}

func (s *Set) pushImage(ctx context.Context, repository func(name string) (*remote.Repository, error), img Image) error {
	repo, err := repository(img.Repository)
	if err != nil {
		return err
	}
	for _, d := range s.Graph[img.Root.Digest] {
		if d.Digest == img.Root.Digest {
			continue
		}
		if err := pushOne(ctx, repo, d, s.Blobs[d.Digest]); err != nil {
			return fmt.Errorf("pushing %s to %s: %w", d.Digest, img.Repository, err)
		}
	}
	if err := repo.PushReference(ctx, img.Root, bytes.NewReader(s.Blobs[img.Root.Digest]), img.Tag); err != nil {
		return fmt.Errorf("tagging %s:%s: %w", img.Repository, img.Tag, err)
	}
	return nil
}

func pushOne(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor, data []byte) error {
	ok, err := repo.Exists(ctx, d)
	if err != nil || ok {
		return err
	}
	return repo.Push(ctx, d, io.NopCloser(bytes.NewReader(data)))
}
