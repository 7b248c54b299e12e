package bundle_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
	"github.com/ferry-oci/ferry/verify"
)

var plain = registry.Options{PlainHTTP: true}

// seed generates a set and pushes it into a fresh source registry.
func seed(t *testing.T, kind regtest.Kind, opts imagegen.Options) (*regtest.Server, *imagegen.Set, []string) {
	t.Helper()
	src := regtest.New(t, kind)
	set, err := imagegen.Generate(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Push(context.Background(), src.Host); err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, img := range set.Images {
		refs = append(refs, img.Reference(src.Host))
	}
	return src, set, refs
}

// assertImported checks that every image of set is at dst under prefix with
// the same digest, and every blob of its graph is there.
func assertImported(t *testing.T, set *imagegen.Set, dstHost, prefix string) {
	t.Helper()
	ctx := context.Background()
	for _, img := range set.Images {
		repoName := img.Repository
		if prefix != "" {
			repoName = prefix + "/" + repoName
		}
		repo, err := remote.NewRepository(dstHost + "/" + repoName)
		if err != nil {
			t.Fatal(err)
		}
		repo.PlainHTTP = true
		got, err := repo.Resolve(ctx, img.Tag)
		if err != nil {
			t.Fatalf("%s:%s at destination: %v", repoName, img.Tag, err)
		}
		if got.Digest != img.Root.Digest {
			t.Errorf("%s:%s is %s at the destination, %s at the source", repoName, img.Tag, got.Digest, img.Root.Digest)
		}
		for _, d := range set.Graph[img.Root.Digest] {
			ok, err := repo.Exists(ctx, d)
			if err != nil || !ok {
				t.Errorf("%s: %s (%s) not reachable at the destination: %v", repoName, d.Digest, d.MediaType, err)
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, kind := range regtest.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			_, set, refs := seed(t, kind, imagegen.Options{})
			dst := regtest.New(t, kind)
			out := filepath.Join(t.TempDir(), "bundle")

			exp, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, Source: plain})
			if err != nil {
				t.Fatal(err)
			}
			if want := len(set.Digests()); exp.Summary.Blobs != want || exp.Summary.Transferred != want {
				t.Errorf("export: %d blobs planned, %d transferred; the set has %d", exp.Summary.Blobs, exp.Summary.Transferred, want)
			}
			// Every blob is in the bundle, once, and nothing else is.
			entries, err := os.ReadDir(filepath.Join(out, "blobs", "sha256"))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != len(set.Digests()) {
				t.Errorf("bundle holds %d blob files, want %d", len(entries), len(set.Digests()))
			}

			dir, err := layout.OpenDir(out)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := verify.Bundle(ctx, dir, verify.Options{})
			if err != nil || !rep.OK() {
				t.Fatalf("verify: %v %v", err, rep.Err())
			}

			imp, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/mirror", Dest: plain})
			if err != nil {
				t.Fatal(err)
			}
			assertImported(t, set, dst.Host, "mirror")
			if len(imp.Summary.TagsSet) != len(set.Images) {
				t.Errorf("import set %d tags, want %d", len(imp.Summary.TagsSet), len(set.Images))
			}

			// A second import finds everything there and changes nothing.
			again, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/mirror", Dest: plain})
			if err != nil {
				t.Fatal(err)
			}
			if again.Summary.Sent != 0 || len(again.Summary.TagsSet) != 0 || len(again.Summary.TagsMoved) != 0 || again.Summary.TagsUnchanged != len(set.Images) {
				t.Errorf("re-import moved something: %+v", again.Summary)
			}
		})
	}
}

func TestSkopeoReadsBundle(t *testing.T) {
	t.Parallel()
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatal("skopeo is required (Debian package skopeo; make deps installs it)")
	}
	ctx := context.Background()
	src, set, refs := seed(t, regtest.Distribution, imagegen.Options{})
	out := filepath.Join(t.TempDir(), "bundle")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, Source: plain}); err != nil {
		t.Fatal(err)
	}
	dst := regtest.New(t, regtest.Debian)
	img := set.Images[1] // team/app1, a single-platform image
	ref := img.Reference(src.Host)
	cmd := exec.Command(skopeo, "copy", "--insecure-policy", "--dest-tls-verify=false",
		"oci:"+out+":"+ref, "docker://"+dst.Host+"/peer/"+img.Repository+":"+img.Tag)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, b)
	}
	repo, _ := remote.NewRepository(dst.Host + "/peer/" + img.Repository)
	repo.PlainHTTP = true
	got, err := repo.Resolve(ctx, img.Tag)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != img.Root.Digest {
		t.Errorf("skopeo copied %s, want %s (blob-level copy must keep the digest)", got.Digest, img.Root.Digest)
	}
}

// tags lists a destination repository's tags; nil when it has none.
func tags(t *testing.T, host, repoName string) []string {
	t.Helper()
	repo, err := remote.NewRepository(host + "/" + repoName)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	var out []string
	err = repo.Tags(context.Background(), "", func(ts []string) error {
		out = append(out, ts...)
		return nil
	})
	var resp *errcode.ErrorResponse
	if err != nil && !(errors.As(err, &resp) && resp.StatusCode == http.StatusNotFound) {
		t.Fatal(err)
	}
	return out
}

// assertUntagged fails t for each image of set that has a tag under prefix
// at host: what a failed or refused import must never leave.
func assertUntagged(t *testing.T, set *imagegen.Set, host, prefix string) {
	t.Helper()
	for _, img := range set.Images {
		if got := tags(t, host, prefix+"/"+img.Repository); len(got) > 0 {
			t.Errorf("%s/%s is tagged %v after a failed import", prefix, img.Repository, got)
		}
	}
}
