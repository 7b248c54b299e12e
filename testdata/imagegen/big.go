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
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
)

// PushBig pushes repo:tag with a single layer of about size bytes,
// generated as a stream (twice: once to learn its digest, once to upload),
// so a blob of several GiB never sits in memory. It returns the image's
// manifest descriptor.
func PushBig(ctx context.Context, repo *remote.Repository, tag string, size int64) (ocispec.Descriptor, error) {
	gen := func(w io.Writer) (digest.Digest, error) {
		diff := digest.SHA256.Digester()
		zw, _ := gzip.NewWriterLevel(w, gzip.NoCompression)
		tw := tar.NewWriter(io.MultiWriter(zw, diff.Hash()))
		hdr := &tar.Header{Name: "opt/big/data.bin", Mode: 0o644, Size: size, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", err
		}
		if _, err := io.CopyN(tw, randomReader{rand.New(rand.NewPCG(uint64(size), 7))}, size); err != nil {
			return "", err
		}
		if err := tw.Close(); err != nil {
			return "", err
		}
		return diff.Digest(), zw.Close()
	}
	// Pass 1: sizes and digests.
	layerDigester := digest.SHA256.Digester()
	cw := &countWriter{w: layerDigester.Hash()}
	diffID, err := gen(cw)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: layerDigester.Digest(), Size: cw.n}
	// Pass 2: upload.
	pr, pw := io.Pipe()
	go func() {
		_, err := gen(pw)
		pw.CloseWithError(err)
	}()
	if err := repo.Blobs().Push(ctx, layer, pr); err != nil {
		pr.CloseWithError(err)
		return ocispec.Descriptor{}, fmt.Errorf("pushing the big layer: %w", err)
	}
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}}})
	cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	if err := repo.Blobs().Push(ctx, cfgDesc, bytes.NewReader(cfg)); err != nil {
		return ocispec.Descriptor{}, err
	}
	man, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: []ocispec.Descriptor{layer}})
	manDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(man), Size: int64(len(man))}
	if err := repo.PushReference(ctx, manDesc, bytes.NewReader(man), tag); err != nil {
		return ocispec.Descriptor{}, err
	}
	return manDesc, nil
}

type randomReader struct{ r *rand.Rand }

func (r randomReader) Read(p []byte) (int, error) {
	i := 0
	for ; i+8 <= len(p); i += 8 {
		v := r.r.Uint64()
		for k := 0; k < 8; k++ {
			p[i+k] = byte(v >> (8 * k))
		}
	}
	for ; i < len(p); i++ {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
