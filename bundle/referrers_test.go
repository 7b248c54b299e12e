package bundle_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/delta"
	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
	"github.com/ferry-oci/ferry/verify"
)

// oras runs the real oras CLI (plain HTTP) and returns its output.
func oras(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(regtest.Tool(t, "oras"), append(args, "--plain-http")...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("oras %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// orasAttach attaches a one-file artifact of artifactType to subject
// (host/repo@digest) and returns the artifact's digest.
func orasAttach(t *testing.T, subject, artifactType, content string, flags ...string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file.json"), []byte(content), 0o644)
	out := oras(t, dir, append([]string{"attach", "--artifact-type", artifactType, "--format", "json", subject, "file.json:application/json"}, flags...)...)
	var desc struct {
		Digest string `json:"digest"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &desc); err != nil || desc.Digest == "" {
		t.Fatalf("oras attach said %q: %v", out, err)
	}
	return desc.Digest
}

// discoverTree is what oras discover shows of subject: every referrer, at
// every depth, as "depth artifactType digest", sorted.
func discoverTree(t *testing.T, subject string) []string {
	t.Helper()
	out := oras(t, t.TempDir(), "discover", "--format", "json", subject)
	var tree struct {
		Referrers []node `json:"referrers"`
	}
	if err := json.Unmarshal([]byte(out), &tree); err != nil {
		t.Fatalf("oras discover said %q: %v", out, err)
	}
	var lines []string
	var walk func(ns []node, depth int)
	walk = func(ns []node, depth int) {
		for _, n := range ns {
			lines = append(lines, strings.Repeat("  ", depth)+n.ArtifactType+" "+n.Digest)
			walk(n.Referrers, depth+1)
		}
	}
	walk(tree.Referrers, 0)
	slices.Sort(lines)
	return lines
}

type node struct {
	Digest       string `json:"digest"`
	ArtifactType string `json:"artifactType"`
	Referrers    []node `json:"referrers"`
}

// An SBOM attached with the real oras CLI, and a signature on that SBOM,
// cross with their image: oras discover shows the same tree at the
// destination, through a directory and through a tarball. A destination
// whose referrers index of the image already lists another artifact keeps
// it.
func TestOrasReferrersTravel(t *testing.T) {
	t.Parallel()
	src, set, refs := seed(t, regtest.Distribution, imagegen.Options{Apps: 1})
	app := set.Images[1] // team/app1
	subject := src.Host + "/" + app.Repository + "@" + app.Root.Digest.String()
	sbom := orasAttach(t, subject, "application/vnd.example.sbom.v1+json", `{"packages":["a","b"]}`)
	orasAttach(t, src.Host+"/"+app.Repository+"@"+sbom, "application/vnd.example.signature.v1+json", `{"sig":"over the sbom"}`)
	want := discoverTree(t, subject)
	if len(want) != 2 {
		t.Fatalf("the source shows %v, want an SBOM and its signature", want)
	}

	dst := regtest.New(t, regtest.Debian)
	// The destination already has the image, with another artifact
	// attached: the import must merge, not replace.
	local, _ := imagegen.Generate(imagegen.Options{Apps: 1, Namespace: "mirror"})
	if err := local.Push(context.Background(), dst.Host); err != nil {
		t.Fatal(err)
	}
	destSubject := dst.Host + "/mirror/" + app.Repository + "@" + app.Root.Digest.String()
	note := orasAttach(t, destSubject, "application/vnd.example.note.v1+json", `{"note":"made on the air-gapped side"}`)

	for _, form := range []string{"bundle", "bundle.tar"} {
		out := filepath.Join(t.TempDir(), form)
		res, err := bundle.Export(context.Background(), bundle.ExportOptions{References: refs, Output: out, Source: plain})
		if err != nil {
			t.Fatal(err)
		}
		if res.Summary.Referrers != 2 {
			t.Fatalf("%s: exported %d referrers, want 2", form, res.Summary.Referrers)
		}
		// inspect lists them under their image, the signature on the SBOM too.
		ins, err := bundle.Inspect(context.Background(), out)
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range ins.Images {
			want := 0
			if img.Digest == app.Root.Digest {
				want = 2
			}
			if len(img.Referrers) != want {
				t.Errorf("%s: inspect lists %d referrers for %s, want %d", form, len(img.Referrers), img.Reference, want)
			}
		}
		if len(ins.Images) != len(set.Images) {
			t.Errorf("%s: inspect lists %d images, want %d (referrers are not images)", form, len(ins.Images), len(set.Images))
		}
		dry, err := bundle.Import(context.Background(), bundle.ImportOptions{Bundle: out, To: dst.Host + "/mirror", Dest: plain, DryRun: true})
		if err != nil || len(dry.Referrers) != 2 {
			t.Fatalf("%s: dry run: %v, %d referrers", form, err, len(dry.Referrers))
		}
		imp, err := bundle.Import(context.Background(), bundle.ImportOptions{Bundle: out, To: dst.Host + "/mirror", Dest: plain})
		if err != nil {
			t.Fatalf("%s: import: %v", form, err)
		}
		got := discoverTree(t, destSubject)
		for _, line := range want {
			if !slices.Contains(got, line) {
				t.Errorf("%s: the destination shows %v, missing %q", form, got, line)
			}
		}
		if !slices.ContainsFunc(got, func(l string) bool { return strings.HasSuffix(l, note) }) {
			t.Errorf("%s: the destination's own artifact %s is gone: %v", form, note, got)
		}
		if form == "bundle.tar" && (imp.Summary.ReferrersPushed != 0 || imp.Summary.ReferrersPresent != 2) {
			t.Errorf("a second import pushed %d referrers and found %d there, want 0 and 2", imp.Summary.ReferrersPushed, imp.Summary.ReferrersPresent)
		}
	}
}

// cosign runs the real cosign CLI in dir, with the key pair's password and
// no transparency log, and returns its output.
func cosign(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(regtest.Tool(t, "cosign"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), regtest.CosignEnv(dir)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cosign %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// cosignKeys makes a key pair with cosign generate-key-pair in a new
// directory, which it returns (cosign.key, cosign.pub).
func cosignKeys(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cosign(t, dir, "generate-key-pair")
	return dir
}

var cosignRegistryFlags = []string{"--allow-insecure-registry", "--allow-http-registry"}

func cosignSign(t *testing.T, keys string, args ...string) {
	t.Helper()
	cosign(t, keys, append(append([]string{"sign", "--key", "cosign.key", "--tlog-upload=false"}, cosignRegistryFlags...), args...)...)
}

// cosignVerify checks ref's signature with the real cosign, as a policy on
// the air-gapped side would.
func cosignVerify(t *testing.T, keys string, args ...string) {
	t.Helper()
	cosign(t, keys, append(append([]string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog"}, cosignRegistryFlags...), args...)...)
}

// Images signed and attested with the real cosign (a key pair made here,
// no transparency log) keep their signatures across the air gap: cosign
// verify and verify-attestation pass at the destination for an image, a
// multi-arch index signed recursively, and one of its children.
func TestCosignSignaturesTravel(t *testing.T) {
	t.Parallel()
	src, set, refs := seed(t, regtest.Distribution, imagegen.Options{Apps: 1})
	keys := cosignKeys(t)
	app, multi := set.Images[1], set.Images[2] // team/app1, library/multi
	at := func(host string, img imagegen.Image, d string) string { return host + "/" + img.Repository + "@" + d }
	cosignSign(t, keys, at(src.Host, app, app.Root.Digest.String()))
	os.WriteFile(filepath.Join(keys, "sbom.json"), []byte(`{"spdxVersion":"SPDX-2.3","name":"app1","packages":[]}`), 0o644)
	cosign(t, keys, append(append([]string{"attest", "--key", "cosign.key", "--tlog-upload=false", "--type", "spdxjson", "--predicate", "sbom.json"}, cosignRegistryFlags...), at(src.Host, app, app.Root.Digest.String()))...)
	cosignSign(t, keys, "--recursive", at(src.Host, multi, multi.Root.Digest.String()))
	child := set.Graph[multi.Root.Digest][len(set.Graph[multi.Root.Digest])-2] // a platform manifest
	if !strings.Contains(child.MediaType, "manifest") {
		t.Fatalf("picked %s, not a platform manifest", child.MediaType)
	}

	dst := regtest.New(t, regtest.Debian)
	out := filepath.Join(t.TempDir(), "bundle.tar")
	res, err := bundle.Export(context.Background(), bundle.ExportOptions{References: refs, Output: out, Source: plain})
	if err != nil {
		t.Fatal(err)
	}
	// app1: a signature and an attestation; multi: its index and both
	// platform manifests signed.
	if res.Summary.Referrers != 5 {
		t.Errorf("exported %d referrers, want 5", res.Summary.Referrers)
	}
	if _, err := bundle.Import(context.Background(), bundle.ImportOptions{Bundle: out, To: dst.Host + "/mirror", Dest: plain}); err != nil {
		t.Fatal(err)
	}
	mirror := func(img imagegen.Image, d string) string { return dst.Host + "/mirror/" + img.Repository + "@" + d }
	cosignVerify(t, keys, mirror(app, app.Root.Digest.String()))
	cosign(t, keys, append(append([]string{"verify-attestation", "--key", "cosign.pub", "--insecure-ignore-tlog", "--type", "spdxjson"}, cosignRegistryFlags...), mirror(app, app.Root.Digest.String()))...)
	cosignVerify(t, keys, mirror(multi, multi.Root.Digest.String()))
	cosignVerify(t, keys, mirror(multi, child.Digest.String()))
}

// referrersFront puts the distribution-spec 1.1 referrers API in front of a
// real registry that has none: it answers GET /v2/<repo>/referrers/<digest>
// with an image index, pageSize entries a page and a Link header to the
// next, and a manifest PUT with a subject with the OCI-Subject header, as
// Harbor ≥ 2.8 does. The manifests themselves go to the real registry.
type referrersFront struct {
	host     string
	pageSize int

	mu    sync.Mutex
	refs  map[string][]ocispec.Descriptor // repo@subject → referrers
	pages int                             // referrers pages served
}

func newReferrersFront(t *testing.T, reg *regtest.Server, pageSize int) *referrersFront {
	f := &referrersFront{pageSize: pageSize, refs: map[string][]ocispec.Descriptor{}}
	f.host = regtest.NewProxy(t, reg, func(w http.ResponseWriter, r *http.Request) bool {
		path := strings.TrimPrefix(r.URL.Path, "/v2/")
		if repo, subject, ok := strings.Cut(path, "/referrers/"); ok && r.Method == http.MethodGet {
			f.list(w, r, repo, subject)
			return true
		}
		if repo, _, ok := strings.Cut(path, "/manifests/"); ok && r.Method == http.MethodPut {
			f.put(t, w, r, reg, repo)
			return true
		}
		return false
	})
	return f
}

func (f *referrersFront) list(w http.ResponseWriter, r *http.Request, repo, subject string) {
	f.mu.Lock()
	all := f.refs[repo+"@"+subject]
	f.pages++
	f.mu.Unlock()
	start := 0
	if last := r.URL.Query().Get("last"); last != "" {
		start, _ = strconv.Atoi(last)
	}
	end := min(start+f.pageSize, len(all))
	page := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: append([]ocispec.Descriptor{}, all[start:end]...)}
	if end < len(all) {
		w.Header().Set("Link", fmt.Sprintf(`</v2/%s/referrers/%s?last=%d>; rel="next"`, repo, subject, end))
	}
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	json.NewEncoder(w).Encode(page)
}

func (f *referrersFront) put(t *testing.T, w http.ResponseWriter, r *http.Request, reg *regtest.Server, repo string) {
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequest(http.MethodPut, "http://"+reg.Host+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	var m struct {
		MediaType    string              `json:"mediaType"`
		ArtifactType string              `json:"artifactType"`
		Config       *ocispec.Descriptor `json:"config"`
		Subject      *ocispec.Descriptor `json:"subject"`
		Annotations  map[string]string   `json:"annotations"`
	}
	json.Unmarshal(body, &m)
	if m.Subject != nil && resp.StatusCode == http.StatusCreated {
		d := ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(body), Size: int64(len(body)), ArtifactType: m.ArtifactType, Annotations: m.Annotations}
		if d.ArtifactType == "" && m.Config != nil {
			d.ArtifactType = m.Config.MediaType
		}
		f.mu.Lock()
		key := repo + "@" + m.Subject.Digest.String()
		if !slices.ContainsFunc(f.refs[key], func(x ocispec.Descriptor) bool { return x.Digest == d.Digest }) {
			f.refs[key] = append(f.refs[key], d)
		}
		f.mu.Unlock()
		w.Header().Set("OCI-Subject", m.Subject.Digest.String())
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// Through the referrers API (a front implementing it before each real
// registry): export follows Link pages, and import, told by OCI-Subject
// that the registry indexes referrers itself, writes no sha256-<hex>
// index, and then finds every referrer through the API.
func TestReferrersAPIWithPagesAndOCISubject(t *testing.T) {
	t.Parallel()
	src, set, _ := seed(t, regtest.Distribution, imagegen.Options{Apps: 1})
	srcFront := newReferrersFront(t, src, 1)
	app := set.Images[1]
	subject := srcFront.host + "/" + app.Repository + "@" + app.Root.Digest.String()
	var attached []string
	for i := range 3 {
		attached = append(attached, orasAttach(t, subject, "application/vnd.example.sbom.v1+json", fmt.Sprintf(`{"n":%d}`, i), "--distribution-spec", "v1.1-referrers-api"))
	}
	sig := orasAttach(t, srcFront.host+"/"+app.Repository+"@"+attached[0], "application/vnd.example.signature.v1+json", `{"sig":1}`, "--distribution-spec", "v1.1-referrers-api")
	// The source has no tag-schema index: only the API finds them.
	if tags := tags(t, src.Host, app.Repository); slices.ContainsFunc(tags, func(s string) bool { return strings.HasPrefix(s, "sha256-") }) {
		t.Fatalf("the front let a referrers index through: %v", tags)
	}

	out := filepath.Join(t.TempDir(), "b")
	srcFront.mu.Lock()
	srcFront.pages = 0
	srcFront.mu.Unlock()
	res, err := bundle.Export(context.Background(), bundle.ExportOptions{References: []string{app.Reference(srcFront.host)}, Output: out, Source: plain})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Plan.Referrers {
		got = append(got, r.Desc.Digest.String())
	}
	for _, d := range append(attached, sig) {
		if !slices.Contains(got, d) {
			t.Errorf("the export missed referrer %s (got %v)", d, got)
		}
	}
	// Three referrers of app1 at one a page: three pages for it.
	if srcFront.pages < 3+1 {
		t.Errorf("%d referrers pages served; Link pages were not followed", srcFront.pages)
	}

	dst := regtest.New(t, regtest.Debian)
	dstFront := newReferrersFront(t, dst, 2)
	imp, err := bundle.Import(context.Background(), bundle.ImportOptions{Bundle: out, To: dstFront.host + "/mirror", Dest: plain})
	if err != nil {
		t.Fatal(err)
	}
	if imp.Summary.ReferrersPushed != 4 {
		t.Errorf("pushed %d referrers, want 4", imp.Summary.ReferrersPushed)
	}
	if tags := tags(t, dst.Host, "mirror/"+app.Repository); slices.ContainsFunc(tags, func(s string) bool { return strings.HasPrefix(s, "sha256-") }) {
		t.Errorf("import wrote a referrers index although the registry answered OCI-Subject: %v", tags)
	}
}

// A signature made at the source after its image crossed travels in the
// next delta, and nothing else but the manifests does; after it is
// imported, cosign verifies it at the destination, and an inventory of the
// destination knows it, so the delta after that carries no referrer.
func TestDeltaCarriesANewSignatureAndNothingElse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, set, refs := seed(t, regtest.Distribution, imagegen.Options{Apps: 1})
	dst := regtest.New(t, regtest.Debian)
	work := t.TempDir()
	full := filepath.Join(work, "full")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: full, Source: plain}); err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: full, To: dst.Host + "/mirror", Dest: plain}); err != nil {
		t.Fatal(err)
	}
	keys := cosignKeys(t)
	app := set.Images[1]
	cosignSign(t, keys, src.Host+"/"+app.Repository+"@"+app.Root.Digest.String())

	d1 := filepath.Join(work, "d1")
	res, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: d1, Source: plain, Baselines: []string{filepath.Join(full, layout.FileBundle)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan.Referrers) != 1 || res.Plan.Referrers[0].Subject != app.Root.Digest || !strings.HasSuffix(res.Plan.Referrers[0].Tag, ".sig") {
		t.Fatalf("the delta carries referrers %+v, want app1's new signature", res.Plan.Referrers)
	}
	sig := map[digest.Digest]bool{}
	for _, d := range res.Plan.Referrers[0].Graph {
		sig[d.Digest] = true
	}
	for _, b := range res.Plan.Blobs {
		if b.Included && !b.Manifest() && !sig[b.Desc.Digest] {
			t.Errorf("the delta carries %s (%s), which is neither a manifest nor the signature's", b.Desc.Digest, b.Desc.MediaType)
		}
	}
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: d1, To: dst.Host + "/mirror", Dest: plain}); err != nil {
		t.Fatal(err)
	}
	cosignVerify(t, keys, dst.Host+"/mirror/"+app.Repository+"@"+app.Root.Digest.String())

	inv, err := delta.WriteInventory(ctx, filepath.Join(work, "inventory.json"), delta.InventoryOptions{Registry: dst.Host, Client: plain, Prefix: "mirror"})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Referrers) != 1 || inv.Referrers[0].Descriptor.Digest != res.Plan.Referrers[0].Desc.Digest {
		t.Fatalf("the inventory lists referrers %+v, want the signature", inv.Referrers)
	}
	res, err = bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: filepath.Join(work, "d2"), Source: plain, Baselines: []string{filepath.Join(work, "inventory.json")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan.Referrers) != 0 {
		t.Errorf("a delta against an inventory that lists the signature carries it again: %+v", res.Plan.Referrers)
	}
}

// A referrer's blob that does not verify stops the import before any
// manifest or tag: no image is tagged without its signature.
func TestCorruptReferrerStopsTheImportBeforeAnyTag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, set, refs := seed(t, regtest.Distribution, imagegen.Options{Apps: 1})
	app := set.Images[1]
	orasAttach(t, src.Host+"/"+app.Repository+"@"+app.Root.Digest.String(), "application/vnd.example.sbom.v1+json", `{"packages":["only","the","sbom"]}`)
	out := filepath.Join(t.TempDir(), "b")
	res, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, Source: plain})
	if err != nil || len(res.Plan.Referrers) != 1 {
		t.Fatalf("export: %v, %d referrers", err, len(res.Plan.Referrers))
	}
	r := res.Plan.Referrers[0]
	layer := r.Graph[len(r.Graph)-2] // the SBOM file, before the manifest
	if layout.IsManifest(layer.MediaType) {
		t.Fatalf("picked %s", layer.MediaType)
	}
	corrupt(t, out, layer.Digest, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
	dst := regtest.New(t, regtest.Debian)
	_, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/mirror", Dest: plain})
	if !errors.Is(err, verify.ErrBundleInvalid) || !errors.Is(err, layout.ErrDigestMismatch) || !strings.Contains(err.Error(), layer.Digest.Encoded()) {
		t.Fatalf("import of a bundle with a corrupt referrer: %v", err)
	}
	assertUntagged(t, set, dst.Host, "mirror")
}

// --no-referrers carries none: not in ferry.json, not in index.json, none
// of their blobs.
func TestNoReferrersCarriesNone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, set, refs := seed(t, regtest.Distribution, imagegen.Options{Apps: 1})
	app := set.Images[1]
	sbom := orasAttach(t, src.Host+"/"+app.Repository+"@"+app.Root.Digest.String(), "application/vnd.example.sbom.v1+json", `{"a":1}`)
	out := filepath.Join(t.TempDir(), "b")
	res, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, Source: plain, NoReferrers: true})
	if err != nil {
		t.Fatal(err)
	}
	ins, err := bundle.Inspect(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary.Referrers != 0 || len(ins.Manifest.Referrers) != 0 {
		t.Fatalf("--no-referrers carried %d referrers (ferry.json lists %d)", res.Summary.Referrers, len(ins.Manifest.Referrers))
	}
	if _, err := os.Stat(filepath.Join(out, "blobs", "sha256", strings.TrimPrefix(sbom, "sha256:"))); err == nil {
		t.Error("--no-referrers carried the SBOM's manifest")
	}
}

// ReferrersByImage lists each image's referrers, level by level (a
// signature of an SBOM after the SBOM), and only those of its own
// repository and manifests: among 2,000 images in one repository, each
// gets its own two.
func TestReferrersByImage(t *testing.T) {
	t.Parallel()
	desc := func(s string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(s), Size: int64(len(s))}
	}
	plan := &bundle.Plan{}
	const n = 2000
	for i := range n {
		root := desc(fmt.Sprint("image ", i))
		src := bundle.Reference{Registry: "r.example", Repository: "team/app", Tag: fmt.Sprint(i)}
		plan.Images = append(plan.Images, bundle.PlannedImage{Source: src, Root: root, Graph: []*ocispec.Descriptor{&root}})
		sbom, sig := desc(fmt.Sprint("sbom ", i)), desc(fmt.Sprint("sig of sbom ", i))
		// The signature is listed first: it is found once its subject is.
		plan.Referrers = append(plan.Referrers,
			bundle.PlannedReferrer{Source: src, Subject: sbom.Digest, Desc: sig},
			bundle.PlannedReferrer{Source: src, Subject: root.Digest, Desc: sbom})
	}
	other := bundle.Reference{Registry: "r.example", Repository: "team/other"}
	plan.Referrers = append(plan.Referrers, bundle.PlannedReferrer{Source: other, Subject: plan.Images[0].Root.Digest, Desc: desc("elsewhere")})
	got := plan.ReferrersByImage()
	if len(got) != n {
		t.Fatalf("%d lists for %d images", len(got), n)
	}
	for i, refs := range got {
		want := []digest.Digest{digest.FromString(fmt.Sprint("sbom ", i)), digest.FromString(fmt.Sprint("sig of sbom ", i))}
		var have []digest.Digest
		for _, r := range refs {
			have = append(have, r.Descriptor.Digest)
		}
		if !slices.Equal(have, want) {
			t.Fatalf("image %d: referrers %v, want the SBOM then its signature %v", i, have, want)
		}
	}
}
