package bundle_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
	"github.com/ferry-oci/ferry/verify"
)

// The same path and tag on two registries (a mirror of docker.io/x/app:1
// and ghcr.io/x/app:1), with different images: import, its dry run and
// verify --against refuse before pushing anything, naming both sources and
// the destination tag; --keep-host keeps them apart. Export refuses one tag
// pinned to two digests outright.
func TestOneDestinationTagTwoImages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	regA, setA, _ := seed(t, regtest.Distribution, imagegen.Options{Apps: 1})
	regB := regtest.New(t, regtest.Distribution)
	setB, err := imagegen.Generate(imagegen.Options{Apps: 1, Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	setB.Images = setB.Images[1:2] // team/app1, other content
	setB.Images[0].Tag = setA.Images[1].Tag
	if err := setB.Push(ctx, regB.Host); err != nil {
		t.Fatal(err)
	}
	a, b := setA.Images[1], setB.Images[0]
	out := filepath.Join(t.TempDir(), "b")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: []string{a.Reference(regA.Host), b.Reference(regB.Host)}, Output: out, Source: plain}); err != nil {
		t.Fatal(err)
	}
	dst := regtest.New(t, regtest.Distribution)
	for _, dry := range []bool{true, false} {
		_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/p", Dest: plain, DryRun: dry})
		if !errors.Is(err, bundle.ErrTagCollision) || !errors.Is(err, bundle.ErrInvalidReference) ||
			!strings.Contains(err.Error(), a.Reference(regA.Host)) || !strings.Contains(err.Error(), b.Reference(regB.Host)) ||
			!strings.Contains(err.Error(), dst.Host+"/p/team/app1:"+a.Tag) || !strings.Contains(err.Error(), "--keep-host") {
			t.Fatalf("dry run %v: %v", dry, err)
		}
	}
	if n := countFiles(t, filepath.Join(dst.Dir, "storage")); n != 0 {
		t.Fatalf("a refused import stored %d files", n)
	}
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/p", Dest: plain, KeepHost: true}); err != nil {
		t.Fatalf("--keep-host: %v", err)
	}
	for host, img := range map[string]imagegen.Image{regA.Host: a, regB.Host: b} {
		if got := tags(t, dst.Host, "p/"+bundle.HostComponent(host)+"/team/app1"); len(got) != 1 || got[0] != img.Tag {
			t.Errorf("--keep-host: p/%s/team/app1 has tags %v", bundle.HostComponent(host), got)
		}
	}

	// One tag pinned to two digests: the export refuses.
	if err := setB.Push(ctx, regA.Host); err != nil { // b's manifest into regA's team/app1 too
		t.Fatal(err)
	}
	pinned := func(img imagegen.Image) string {
		return regA.Host + "/team/app1:" + a.Tag + "@" + img.Root.Digest.String()
	}
	_, err = bundle.Export(ctx, bundle.ExportOptions{References: []string{pinned(a), pinned(b)}, Output: filepath.Join(t.TempDir(), "x"), Source: plain})
	if !errors.Is(err, bundle.ErrTagCollision) || !strings.Contains(err.Error(), a.Root.Digest.String()) || !strings.Contains(err.Error(), b.Root.Digest.String()) {
		t.Fatalf("export of one tag pinned to two digests: %v", err)
	}
}

// A layout named the containerd way (the full name in
// io.containerd.image.name, only the tag in ref.name) imports under the
// full name; an entry with no name is pushed by digest and the summary says
// so; a layout named by bare tags needs --to REGISTRY/REPOSITORY (a usage
// error without).
func TestContainerdNamesAndUnnamedEntries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, set, out := exportSet(t, regtest.Distribution)
	os.Remove(filepath.Join(out, layout.FileBundle)) // a plain OCI layout
	idxPath := filepath.Join(out, layout.FileIndex)
	var idx ocispec.Index
	data, _ := os.ReadFile(idxPath)
	json.Unmarshal(data, &idx)
	unnamed := idx.Manifests[0].Digest
	for i := range idx.Manifests {
		full := idx.Manifests[i].Annotations[ocispec.AnnotationRefName]
		idx.Manifests[i].Annotations[ocispec.AnnotationRefName] = full[strings.LastIndex(full, ":")+1:]
		if i == 0 {
			idx.Manifests[i].Annotations = nil
		}
	}
	data, _ = json.Marshal(idx)
	os.Chmod(idxPath, 0o644)
	os.WriteFile(idxPath, data, 0o644)

	dst := regtest.New(t, regtest.Distribution)
	res, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/p", Dest: plain})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range set.Images {
		if img.Root.Digest == unnamed {
			continue
		}
		if got := tags(t, dst.Host, "p/"+img.Repository); len(got) != 1 || got[0] != img.Tag {
			t.Errorf("p/%s has tags %v, want [%s] (the containerd name)", img.Repository, got, img.Tag)
		}
	}
	if len(res.Summary.Untagged) != 1 || !strings.Contains(res.Summary.Untagged[0], unnamed.String()) {
		t.Errorf("the summary lists %v as pushed by digest, want the unnamed %s", res.Summary.Untagged, unnamed)
	}

	// Bare tags only (skopeo's, oras's layouts) and --to without a
	// repository: a usage error that says what to add.
	for i := range idx.Manifests {
		if idx.Manifests[i].Annotations != nil {
			delete(idx.Manifests[i].Annotations, "io.containerd.image.name")
		}
	}
	data, _ = json.Marshal(idx)
	os.WriteFile(idxPath, data, 0o644)
	_, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host, Dest: plain})
	if !errors.Is(err, bundle.ErrInvalidReference) || !strings.Contains(err.Error(), "REGISTRY/REPOSITORY") {
		t.Fatalf("bare tags with --to REGISTRY alone: %v", err)
	}
}

// snapshot maps every file below root to its content.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(root, func(path string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			data, _ := os.ReadFile(path)
			out[path] = string(data)
		}
		return nil
	})
	return out
}

// Export never destroys what it did not write: a directory holding
// another tool's layout, a bundle of other images, or a file of the user's
// is refused before a byte is written, and left exactly as it was; a
// bundle of the same images is refreshed in place.
func TestExportLeavesWhatItDidNotWriteAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, _, refs := seed(t, regtest.Distribution, imagegen.Options{Apps: 1})
	other := filepath.Join(t.TempDir(), "other")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs[:1], Output: other, Source: plain}); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(t.TempDir(), "foreign")
	os.CopyFS(foreign, os.DirFS(other))
	os.Remove(filepath.Join(foreign, layout.FileBundle)) // another tool's layout: no ferry.json
	notes := t.TempDir()
	os.WriteFile(filepath.Join(notes, "notes.txt"), []byte("mine"), 0o644)
	for name, dir := range map[string]string{"a bundle of other images": other, "another tool's layout": foreign, "a user's file": notes} {
		before := snapshot(t, dir)
		_, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: dir, Source: plain})
		if !errors.Is(err, bundle.ErrOutputInUse) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: export into it: %v", name, err)
		}
		after := snapshot(t, dir)
		if len(after) != len(before) {
			t.Errorf("%s: %d files before the refused export, %d after", name, len(before), len(after))
		}
		for path, content := range before {
			if after[path] != content {
				t.Errorf("%s: %s changed", name, path)
			}
		}
	}
	// The same images again: the bundle is refreshed, nothing fetched twice.
	res, err := bundle.Export(ctx, bundle.ExportOptions{References: refs[:1], Output: other, Source: plain})
	if err != nil || res.Summary.Transferred != 0 {
		t.Fatalf("re-export of the same images: %v, fetched %d", err, res.Summary.Transferred)
	}
}

// Counts add up: an import counts blobs as the export did (distinct,
// manifests included, the same bytes), repository × blob pairs apart, and
// a dry run's numbers are the real run's; a re-import sends nothing.
func TestImportCountsAddUpAndDryRunEqualsTheRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, _, refs := seed(t, regtest.Distribution, imagegen.Options{Apps: 3})
	out := filepath.Join(t.TempDir(), "b")
	exp, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, Source: plain})
	if err != nil {
		t.Fatal(err)
	}
	dst := regtest.New(t, regtest.Distribution)
	opts := bundle.ImportOptions{Bundle: out, To: dst.Host + "/m", Dest: plain}
	dry := opts
	dry.DryRun = true
	plan, err := bundle.Import(ctx, dry)
	if err != nil {
		t.Fatal(err)
	}
	res, err := bundle.Import(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, p := res.Summary, plan.Summary
	if s.Blobs != exp.Summary.Blobs || s.Bytes != exp.Summary.Bytes {
		t.Errorf("import counts %d blobs (%d bytes), export %d (%d)", s.Blobs, s.Bytes, exp.Summary.Blobs, exp.Summary.Bytes)
	}
	if s.Sent != s.Blobs || s.SentBytes != s.Bytes {
		t.Errorf("into an empty registry: sent %d of %d blobs (%d of %d bytes)", s.Sent, s.Blobs, s.SentBytes, s.Bytes)
	}
	if s.Uploads == 0 || s.Mounted == 0 {
		t.Errorf("the shared base is uploaded once and mounted elsewhere: %d uploads, %d mounts", s.Uploads, s.Mounted)
	}
	type counts struct{ blobs, sent, uploads, mounted, inPlace, mPushed, mPresent int }
	of := func(x bundle.ImportSummary) counts {
		return counts{x.Blobs, x.Sent, x.Uploads, x.Mounted, x.InPlace, x.ManifestsPushed, x.ManifestsPresent}
	}
	if of(p) != of(s) || p.SentBytes != s.SentBytes {
		t.Errorf("the dry run said %+v, the import did %+v", of(p), of(s))
	}
	again, err := bundle.Import(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	a := again.Summary
	if a.Sent != 0 || a.Uploads != 0 || a.Mounted != 0 || a.InPlace != s.Uploads+s.Mounted || a.ManifestsPresent != s.ManifestsPushed {
		t.Errorf("a re-import: %+v, after %+v", of(a), of(s))
	}
}

// pushWindowsLike pushes to host an image of one ordinary layer and one
// foreign layer (as Windows base images have) whose bytes only its URL
// serves, and returns its reference, the foreign layer and a server that
// serves it.
func pushWindowsLike(t *testing.T, host string) (string, ocispec.Descriptor) {
	t.Helper()
	ctx := context.Background()
	foreignBytes := []byte(strings.Repeat("licensed base layer ", 4096))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(foreignBytes) }))
	t.Cleanup(srv.Close)
	repo, err := remote.NewRepository(host + "/win/app")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	push := func(mediaType string, data []byte) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
		if err := repo.Push(ctx, d, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		return d
	}
	config := push("application/vnd.docker.container.image.v1+json", []byte(`{"architecture":"amd64","os":"windows","rootfs":{"type":"layers","diff_ids":[]}}`))
	app := push("application/vnd.docker.image.rootfs.diff.tar.gzip", []byte("app layer bytes"))
	foreign := ocispec.Descriptor{MediaType: layout.MediaTypeDockerForeignLayer, Digest: digest.FromBytes(foreignBytes), Size: int64(len(foreignBytes)), URLs: []string{srv.URL + "/base.tar.gz"}}
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": layout.MediaTypeDockerManifest, "config": config, "layers": []ocispec.Descriptor{foreign, app}})
	md := ocispec.Descriptor{MediaType: layout.MediaTypeDockerManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
	if err := repo.PushReference(ctx, md, bytes.NewReader(m), "1"); err != nil {
		t.Fatal(err)
	}
	return host + "/win/app:1", foreign
}

// Foreign layers travel as descriptors: by default the manifest travels
// and the blob does not (it failed with "the source registry does not have
// it"), verify and import accept the missing blob for that reason, and the
// image lands; --include-foreign fetches it from its URL; a registry that
// refuses such manifests is named with the setting that allows them.
func TestForeignLayersTravelAsDescriptors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := regtest.NewWith(t, regtest.Distribution, regtest.Options{AllowLayerURLs: `^http://127\.0\.0\.1`})

	ref, foreign := pushWindowsLike(t, src.Host)
	out := filepath.Join(t.TempDir(), "b")
	res, err := bundle.Export(ctx, bundle.ExportOptions{References: []string{ref}, Output: out, Source: plain})
	if err != nil {
		t.Fatalf("export of an image with a foreign layer: %v", err)
	}
	if res.Summary.Foreign != 1 {
		t.Errorf("export left out %d foreign layers, want 1", res.Summary.Foreign)
	}
	if _, err := os.Stat(filepath.Join(out, layout.BlobName(foreign.Digest))); err == nil {
		t.Error("the foreign layer travelled without --include-foreign")
	}
	rep, err := verify.Path(ctx, out, verify.Options{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !rep.OK() || rep.Foreign != 1 {
		t.Fatalf("verify: %v, foreign %d", rep.Err(), rep.Foreign)
	}
	local := regtest.Options{AllowLayerURLs: `^http://127\.0\.0\.1`}
	dst := regtest.NewWith(t, regtest.Debian, local)
	imp, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/m", Dest: plain})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if imp.Summary.Foreign != 1 {
		t.Errorf("import counted %d foreign layers, want 1", imp.Summary.Foreign)
	}
	if got := tags(t, dst.Host, "m/win/app"); len(got) != 1 {
		t.Errorf("m/win/app has tags %v", got)
	}

	// --include-foreign: fetched from its URL (the registry lacks it).
	with := filepath.Join(t.TempDir(), "b")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: []string{ref}, Output: with, Source: plain, IncludeForeign: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(with, layout.BlobName(foreign.Digest))); err != nil {
		t.Errorf("--include-foreign did not carry the foreign layer: %v", err)
	}
	if rep, err := verify.Path(ctx, with, verify.Options{}); err != nil || !rep.OK() {
		t.Fatalf("verify with the foreign layer: %v %+v", err, rep)
	}

	// A registry that refuses layer URLs (distribution's default): the
	// error names the setting.
	strict := regtest.New(t, regtest.Distribution)
	_, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: strict.Host + "/m", Dest: plain})
	if err == nil || !strings.Contains(err.Error(), "validation.manifests.urls.allow") {
		t.Fatalf("import into a registry that refuses layer URLs: %v", err)
	}
}
