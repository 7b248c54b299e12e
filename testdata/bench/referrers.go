package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

// referrerCost measures what carrying a signature and an SBOM for every
// image costs ferry: one corpus, each image given both (OCI 1.1 referrers
// with a subject, pushed into the tag schema as oras and cosign do on a
// registry without the referrers API), exported with and without
// --no-referrers, and each bundle imported into a fresh registry,
// interleaved over the rounds. The lines it returns compare the time with
// the bytes the referrers add.
func (e *env) referrerCost(ctx context.Context) ([]string, error) {
	set, err := imagegen.Generate(imagegen.Options{Apps: 8, LayerSize: int(e.scale / 11 / 4), Namespace: "signed"})
	if err != nil {
		return nil, err
	}
	set.Images = withoutNested(set.Images)
	if err := set.Push(ctx, e.src.Host); err != nil {
		return nil, err
	}
	added, err := attachReferrers(ctx, e.src.Host, set)
	if err != nil {
		return nil, err
	}
	variants := []struct {
		name  string
		flags []string
	}{{"without referrers", []string{"--no-referrers"}}, {"with referrers", nil}}
	var export, imp [2][]time.Duration
	for round := 0; round < e.rounds; round++ {
		for i, v := range variants {
			out := filepath.Join(e.work, fmt.Sprintf("signed-%d-%d", round, i))
			args := append([]string{"-q", "export", "-o", out, "--src-plain-http"}, v.flags...)
			s, err := timed([]*exec.Cmd{e.cmd("ferry", append(args, refs(set, e.src.Host)...)...)}, e.src)
			if err != nil {
				return nil, err
			}
			export[i] = append(export[i], s.wall)
			dst, err := regtest.Start(ctx, regtest.Distribution, filepath.Join(e.work, fmt.Sprintf("signed-dst-%d-%d", round, i)), regtest.Options{})
			if err != nil {
				return nil, err
			}
			s, err = timed([]*exec.Cmd{e.cmd("ferry", "-q", "import", out, "--to", dst.Host+"/m", "--dest-plain-http")}, dst)
			dst.Stop()
			if err != nil {
				return nil, err
			}
			imp[i] = append(imp[i], s.wall)
			log("round %d  signed corpus %-17s export %.2fs  import %.2fs", round+1, v.name, export[i][round].Seconds(), imp[i][round].Seconds())
		}
	}
	size := unique(set)
	ratio := func(d [2][]time.Duration) float64 { return median(d[1]).Seconds() / median(d[0]).Seconds() }
	return []string{
		fmt.Sprintf("%d images, %s of layers; a signature and an SBOM each add %s (%.2f%% of the bytes) and %d manifests", len(set.Images), human(size), human(added), 100*float64(added)/float64(size), 2*len(set.Images)),
		fmt.Sprintf("export: %.2fs with referrers, %.2fs with --no-referrers: %.2f× the time", median(export[1]).Seconds(), median(export[0]).Seconds(), ratio(export)),
		fmt.Sprintf("import: %.2fs with referrers, %.2fs without: %.2f× the time", median(imp[1]).Seconds(), median(imp[0]).Seconds(), ratio(imp)),
	}, nil
}

// attachReferrers gives every image of set a signature-like and an
// SBOM-like referrer and returns the bytes they add.
func attachReferrers(ctx context.Context, host string, set *imagegen.Set) (int64, error) {
	var added int64
	for _, img := range set.Images {
		repo, err := remote.NewRepository(host + "/" + img.Repository)
		if err != nil {
			return 0, err
		}
		repo.PlainHTTP = true
		for _, a := range []struct {
			artifactType string
			size         int
		}{{"application/vnd.example.signature.v1+json", 512}, {"application/spdx+json", 32 << 10}} {
			n, err := attach(ctx, repo, img.Root, a.artifactType, a.size)
			if err != nil {
				return 0, err
			}
			added += n
		}
	}
	return added, nil
}

// attach pushes one artifact of size bytes referring to subject; oras-go
// adds it to the subject's referrers index.
func attach(ctx context.Context, repo *remote.Repository, subject ocispec.Descriptor, artifactType string, size int) (int64, error) {
	data := make([]byte, size)
	imagegenFill(data)
	layer := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(size)}
	empty := ocispec.DescriptorEmptyJSON
	for _, b := range []struct {
		d    ocispec.Descriptor
		data []byte
	}{{layer, data}, {empty, empty.Data}} {
		if err := repo.Blobs().Push(ctx, b.d, bytes.NewReader(b.data)); err != nil {
			return 0, err
		}
	}
	m, _ := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType,
		Config: empty, Layers: []ocispec.Descriptor{layer}, Subject: &ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
	})
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
	return int64(size + len(m) + len(empty.Data)), repo.Push(ctx, desc, bytes.NewReader(m))
}
