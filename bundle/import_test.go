package bundle_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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

// exportSet seeds a source and exports the whole set.
func exportSet(t *testing.T, kind regtest.Kind) (*regtest.Server, *imagegen.Set, string) {
	t.Helper()
	src, set, refs := seed(t, kind, imagegen.Options{})
	out := filepath.Join(t.TempDir(), "bundle")
	if _, err := bundle.Export(context.Background(), bundle.ExportOptions{References: refs, Output: out, Source: plain}); err != nil {
		t.Fatal(err)
	}
	return src, set, out
}

// largestLayer is the biggest non-manifest blob of the set and the image
// that uses it first.
func largestLayer(set *imagegen.Set) (digest.Digest, string) {
	var best digest.Digest
	var size int64
	var owner string
	for _, img := range set.Images {
		for _, d := range set.Graph[img.Root.Digest] {
			if !layout.IsManifest(d.MediaType) && d.Size > size {
				best, size, owner = d.Digest, d.Size, img.Repository
			}
		}
	}
	return best, owner
}

func corrupt(t *testing.T, bundleDir string, d digest.Digest, mutate func([]byte) []byte) {
	t.Helper()
	path := filepath.Join(bundleDir, layout.BlobName(d))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, mutate(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportRefusesCorruptBundle(t *testing.T) {
	t.Parallel()
	_, set, _ := exportSet(t, regtest.Distribution)
	layer, owner := largestLayer(set)
	var manifest digest.Digest
	for _, img := range set.Images {
		if img.Repository == "team/app2" {
			manifest = img.Root.Digest
		}
	}
	cases := map[string]struct {
		blob   digest.Digest
		mutate func([]byte) []byte
		want   error
		// lateFault: only hashing finds it (the structure is sound).
		lateFault bool
	}{
		"flipped byte in a layer":      {layer, func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, layout.ErrDigestMismatch, true},
		"flipped last byte of a layer": {layer, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, layout.ErrDigestMismatch, true},
		"truncated layer":              {layer, func(b []byte) []byte { return b[:len(b)-10] }, layout.ErrSizeMismatch, false},
		"trailing bytes on a layer":    {layer, func(b []byte) []byte { return append(b, 0) }, layout.ErrSizeMismatch, false},
		"flipped byte in a manifest":   {manifest, func(b []byte) []byte { b[len(b)-2] ^= 1; return b }, layout.ErrDigestMismatch, false},
	}
	for name, tc := range cases {
		for _, verifyFirst := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/verify-first=%v", name, verifyFirst), func(t *testing.T) {
				_, _, out := exportSet(t, regtest.Distribution)
				corrupt(t, out, tc.blob, tc.mutate)
				dst := regtest.New(t, regtest.Distribution)
				_, err := bundle.Import(context.Background(), bundle.ImportOptions{Bundle: out, To: dst.Host + "/mirror", Dest: plain, VerifyFirst: verifyFirst})
				if !errors.Is(err, verify.ErrBundleInvalid) || !errors.Is(err, tc.want) {
					t.Fatalf("import of a corrupt bundle: %v, want ErrBundleInvalid and %v", err, tc.want)
				}
				msg := err.Error()
				if !strings.Contains(msg, tc.blob.Encoded()) {
					t.Errorf("error does not name the blob and the fault:\n%s", msg)
				}
				if tc.blob == layer && !strings.Contains(msg, owner) {
					t.Errorf("error does not name the image the blob breaks (%s):\n%s", owner, msg)
				}
				assertUntagged(t, set, dst.Host, "mirror")
				storage := filepath.Join(dst.Dir, "storage")
				// A bundle whose structure is wrong (a file of the wrong size,
				// a bad manifest) pushes nothing; so does any bad bundle with
				// VerifyFirst.
				if verifyFirst || !tc.lateFault {
					if n := countFiles(t, storage); n != 0 {
						t.Errorf("the destination stored %d files after a refused import", n)
					}
					return
				}
				// A layer that fails as it is pushed: never committed, no
				// manifest pushed. The uploads under way finish; the bad one
				// is cut off before its last bytes, and distribution keeps
				// such a session (it refuses to cancel an upload whose size
				// moved) until it purges stale uploads: at most that one.
				var open []string
				filepath.Walk(storage, func(path string, fi os.FileInfo, err error) error {
					switch {
					case err != nil:
					case strings.Contains(path, tc.blob.Encoded()):
						t.Errorf("the corrupt blob reached the destination: %s", path)
					case strings.Contains(path, "/_manifests/"):
						t.Errorf("a manifest reached the destination: %s", path)
					case strings.Contains(path, "/_uploads/") && fi.Name() == "startedat":
						open = append(open, path)
					}
					return nil
				})
				if len(open) > 1 {
					t.Errorf("%d upload sessions left open, want at most the bad blob's: %v", len(open), open)
				}
			})
		}
	}
}

func countFiles(t *testing.T, root string) int {
	n := 0
	filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

func TestExportResumesAndReplacesBadLeftovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, set, out := exportSet(t, regtest.Distribution)
	all := set.Digests()
	// Simulate an interrupted run: metadata gone, two blobs missing, one
	// corrupt, a temp file left over.
	os.Remove(filepath.Join(out, layout.FileIndex))
	os.Remove(filepath.Join(out, layout.FileBundle))
	os.Remove(filepath.Join(out, layout.BlobName(all[0])))
	os.Remove(filepath.Join(out, layout.BlobName(all[1])))
	corrupt(t, out, all[2], func(b []byte) []byte { b[0] ^= 0xff; return b })
	os.WriteFile(filepath.Join(out, "blobs", "sha256", ".ferry-tmp-x-123"), []byte("partial"), 0o644)

	var refs []string
	for _, img := range set.Images {
		refs = append(refs, img.Reference(src.Host))
	}
	res, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, Source: plain})
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary.Transferred != 3 || res.Summary.Skipped != len(all)-3 {
		t.Fatalf("resumed export fetched %d and reused %d; want 3 and %d", res.Summary.Transferred, res.Summary.Skipped, len(all)-3)
	}
	dir, _ := layout.OpenDir(out)
	rep, err := verify.Bundle(ctx, dir, verify.Options{})
	if err != nil || !rep.OK() {
		t.Fatalf("resumed bundle does not verify: %v %v", err, rep.Err())
	}
	if got := blobFiles(t, out); len(got) != len(all) {
		t.Fatalf("bundle holds %d files, want %d (temp files pruned)", len(got), len(all))
	}
}

func TestImportMovesTagsAndSaysSo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kind := regtest.Debian
	_, v1, out := exportSet(t, kind)
	dst := regtest.New(t, kind)
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host, Dest: plain}); err != nil {
		t.Fatal(err)
	}
	// Someone pushes v2 content under the v1 tags at the destination.
	v2, _ := imagegen.Generate(imagegen.Options{Version: 2})
	for i := range v2.Images {
		v2.Images[i].Tag = v1.Images[i].Tag
	}
	if err := v2.Push(ctx, dst.Host); err != nil {
		t.Fatal(err)
	}
	res, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host, Dest: plain})
	if err != nil {
		t.Fatal(err)
	}
	// The apps changed; base, multi and nested did not.
	if len(res.Summary.TagsMoved) != 3 || res.Summary.TagsUnchanged != 3 {
		t.Fatalf("moved %v, unchanged %d; want the 3 app tags moved", res.Summary.TagsMoved, res.Summary.TagsUnchanged)
	}
	for _, m := range res.Summary.TagsMoved {
		if !strings.Contains(m, "team/app") || !strings.Contains(m, "was sha256:") {
			t.Errorf("moved tag reported as %q", m)
		}
	}
	assertImported(t, v1, dst.Host, "")

	// --no-overwrite refuses before pushing anything, naming every tag.
	if err := v2.Push(ctx, dst.Host); err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host, Dest: plain, NoOverwrite: true})
	if !errors.Is(err, bundle.ErrTagWouldMove) {
		t.Fatalf("--no-overwrite: %v, want ErrTagWouldMove", err)
	}
	for i := 1; i <= 3; i++ {
		if !strings.Contains(err.Error(), fmt.Sprintf("team/app%d:v1", i)) {
			t.Errorf("the error does not name team/app%d:v1:\n%v", i, err)
		}
	}
	for _, img := range v2.Images {
		repo, _ := remote.NewRepository(dst.Host + "/" + img.Repository)
		repo.PlainHTTP = true
		if got, _ := repo.Resolve(ctx, img.Tag); got.Digest != img.Root.Digest {
			t.Errorf("%s:%s moved despite --no-overwrite", img.Repository, img.Tag)
		}
	}
}

func TestImportDryRunPushesNothing(t *testing.T) {
	t.Parallel()
	_, set, out := exportSet(t, regtest.Distribution)
	dst := regtest.New(t, regtest.Distribution)
	res, err := bundle.Import(context.Background(), bundle.ImportOptions{Bundle: out, To: dst.Host + "/m", Dest: plain, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	layers := 0
	for _, rb := range res.Push {
		if layout.IsManifest(rb.Desc.MediaType) {
			t.Errorf("plan lists manifest %s among blobs", rb.Desc.Digest)
		}
		layers++
	}
	if layers == 0 || len(res.Targets) != len(set.Images) {
		t.Fatalf("dry run planned %d blob pushes for %d targets", layers, len(res.Targets))
	}
	if n := countFiles(t, filepath.Join(dst.Dir, "storage")); n != 0 {
		t.Fatalf("a dry run stored %d files at the destination", n)
	}
}

func TestImportPlainLayoutFromSkopeo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, set, _ := seed(t, regtest.Distribution, imagegen.Options{})
	dst := regtest.New(t, regtest.Debian)
	layoutDir := filepath.Join(t.TempDir(), "skopeo-layout")
	app := set.Images[1]
	cmd := exec.Command("skopeo", "copy", "--insecure-policy", "--src-tls-verify=false",
		"docker://"+app.Reference(src.Host), "oci:"+layoutDir+":"+app.Tag)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, b)
	}
	// A bare tag needs the repository in --to, and the error says so.
	_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: layoutDir, To: dst.Host, Dest: plain})
	if err == nil || !strings.Contains(err.Error(), "REGISTRY/REPOSITORY") {
		t.Fatalf("import of a bare tag without a repository: %v", err)
	}
	res, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: layoutDir, To: dst.Host + "/from-skopeo/app1", Dest: plain})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Summary.TagsSet) != 1 || res.Summary.TagsSet[0] != dst.Host+"/from-skopeo/app1:"+app.Tag {
		t.Fatalf("tags set: %v", res.Summary.TagsSet)
	}
	only := *set
	only.Images = []imagegen.Image{{Repository: "from-skopeo/app1", Tag: app.Tag, Root: app.Root}}
	assertImported(t, &only, dst.Host, "")
}

// Names that break the destination's rules are refused before any request:
// the destination here does not even exist.
func TestInvalidDestinationNamesFailBeforeAnyRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, _, out := exportSet(t, regtest.Distribution)
	for _, tc := range []struct {
		to     string
		harbor bool
		want   string
	}{
		{"127.0.0.1:1/Upper", false, "not a valid repository"},
		{"127.0.0.1:1/my__project", true, "Harbor project name"},
		{"127.0.0.1:1/a--b", true, "Harbor project name"},
	} {
		_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: tc.to, Dest: plain, Harbor: tc.harbor})
		if !errors.Is(err, bundle.ErrInvalidReference) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--to %s (harbor %v): %v", tc.to, tc.harbor, err)
		}
	}
}

// A blob the destination already holds in one repository is mounted into
// the others that need it, never sent again: what an import killed between
// an upload and its mounts leaves behind.
func TestImportMountsWhatAnotherRepositoryHolds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, set, refs := seed(t, regtest.Distribution, imagegen.Options{})
	out := filepath.Join(t.TempDir(), "bundle")
	tarball := out + ".tar"
	for _, o := range []string{out, tarball} {
		if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: o, Source: plain}); err != nil {
			t.Fatal(err)
		}
	}
	// The blob most repositories share.
	users := map[digest.Digest]map[string]bool{}
	for _, img := range set.Images {
		for _, d := range set.Graph[img.Root.Digest] {
			if layout.IsManifest(d.MediaType) {
				continue
			}
			if users[d.Digest] == nil {
				users[d.Digest] = map[string]bool{}
			}
			users[d.Digest][img.Repository] = true
		}
	}
	var shared digest.Digest
	for d, u := range users {
		if len(u) > len(users[shared]) {
			shared = d
		}
	}
	if len(users[shared]) < 2 {
		t.Fatal("the test set has no blob shared by two repositories")
	}
	for _, bundlePath := range []string{out, tarball} {
		t.Run(filepath.Base(bundlePath), func(t *testing.T) {
			dst := regtest.New(t, regtest.Distribution)
			var holder string
			for r := range users[shared] {
				holder = r
				break
			}
			// Seed the destination: the shared blob in one repository only.
			repo, _ := remote.NewRepository(dst.Host + "/mirror/" + holder)
			repo.PlainHTTP = true
			data, err := os.ReadFile(filepath.Join(out, layout.BlobName(shared)))
			if err != nil {
				t.Fatal(err)
			}
			var desc ocispec.Descriptor
			for _, img := range set.Images {
				for _, d := range set.Graph[img.Root.Digest] {
					if d.Digest == shared {
						desc = d
					}
				}
			}
			if err := repo.Blobs().Push(ctx, desc, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			var puts []string
			var mu sync.Mutex
			proxy := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
					mu.Lock()
					puts = append(puts, r.URL.Query().Get("digest"))
					mu.Unlock()
				}
				return false
			})
			res, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: bundlePath, To: proxy + "/mirror", Dest: plain})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range puts {
				if d == shared.String() {
					t.Errorf("the shared blob was sent again, though %s held it", holder)
				}
			}
			if res.Summary.Mounted < len(users[shared])-1 {
				t.Errorf("mounted %d blobs, want at least %d (the shared one into every other repository)", res.Summary.Mounted, len(users[shared])-1)
			}
			for r := range users[shared] {
				repo, _ := remote.NewRepository(dst.Host + "/mirror/" + r)
				repo.PlainHTTP = true
				if ok, err := repo.Blobs().Exists(ctx, desc); err != nil || !ok {
					t.Errorf("%s lacks the shared blob after the import: %v", r, err)
				}
			}
		})
	}
}
