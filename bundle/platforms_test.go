package bundle_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

// A multi-arch index narrowed to one platform: the bundle holds no blob of
// the other, the new index imports into Debian's 2.8 and skopeo inspects
// it clean there; the referrers of the platform carried travel, those of
// the original index are counted as no longer applying; single mode
// carries the one manifest; an image with none of the platforms fails the
// plan, naming it.
func TestPlatformSelection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, set, _ := seed(t, regtest.Distribution, imagegen.Options{Apps: 1})
	multi := set.Images[2] // library/multi: linux/amd64 and linux/arm64
	var amd64, arm64 ocispec.Descriptor
	var idx ocispec.Index
	json.Unmarshal(set.Blobs[multi.Root.Digest], &idx)
	for _, m := range idx.Manifests {
		switch m.Platform.Architecture {
		case "amd64":
			amd64 = m
		case "arm64":
			arm64 = m
		}
	}
	at := func(d string) string { return src.Host + "/" + multi.Repository + "@" + d }
	orasAttach(t, at(multi.Root.Digest.String()), "application/vnd.example.signature.v1+json", `{"over":"the index"}`)
	sbom := orasAttach(t, at(amd64.Digest.String()), "application/vnd.example.sbom.v1+json", `{"over":"amd64"}`)
	ref := multi.Reference(src.Host)

	out := filepath.Join(t.TempDir(), "b")
	res, err := bundle.Export(ctx, bundle.ExportOptions{References: []string{ref}, Output: out, Source: plain, Platforms: []ocispec.Platform{{OS: "linux", Architecture: "amd64"}}})
	if err != nil {
		t.Fatal(err)
	}
	img := res.Plan.Images[0]
	if img.Selection == nil || strings.Join(img.Selection.Kept, ",") != "linux/amd64" || strings.Join(img.Selection.Dropped, ",") != "linux/arm64" || img.Selection.Inapplicable != 1 {
		t.Fatalf("selection: %+v", img.Selection)
	}
	if img.Root.Digest == multi.Root.Digest || !layout.IsIndex(img.Root.MediaType) {
		t.Fatalf("the narrowed root is %s (%s)", img.Root.Digest, img.Root.MediaType)
	}
	for _, d := range set.Graph[arm64.Digest] {
		if _, err := os.Stat(filepath.Join(out, layout.BlobName(d.Digest))); err == nil {
			t.Errorf("the bundle holds %s of linux/arm64", d.Digest)
		}
	}
	if len(res.Plan.Referrers) != 1 || res.Plan.Referrers[0].Desc.Digest.String() != sbom {
		t.Errorf("referrers carried: %+v, want the amd64 SBOM only", res.Plan.Referrers)
	}
	dst := regtest.New(t, regtest.Debian)
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/m", Dest: plain}); err != nil {
		t.Fatalf("import of the narrowed index into Debian's 2.8: %v", err)
	}
	raw, err := exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+dst.Host+"/m/"+multi.Repository+":"+multi.Tag).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect --raw: %v\n%s", err, raw)
	}
	var got ocispec.Index
	if err := json.Unmarshal(raw, &got); err != nil || len(got.Manifests) != 1 || got.Manifests[0].Digest != amd64.Digest {
		t.Fatalf("at the destination: %s (%v)", raw, err)
	}
	if b, err := exec.Command("skopeo", "inspect", "--tls-verify=false", "--override-arch", "amd64", "--override-os", "linux", "docker://"+dst.Host+"/m/"+multi.Repository+":"+multi.Tag).CombinedOutput(); err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, b)
	}

	// Single: the one manifest under the tag.
	single := filepath.Join(t.TempDir(), "s")
	res, err = bundle.Export(ctx, bundle.ExportOptions{References: []string{ref}, Output: single, Source: plain, NoReferrers: true,
		Platforms: []ocispec.Platform{{OS: "linux", Architecture: "arm64"}}, PlatformMode: bundle.SingleManifest})
	if err != nil || res.Plan.Images[0].Root.Digest != arm64.Digest {
		t.Fatalf("single: %v, root %v", err, res.Plan.Images[0].Root.Digest)
	}

	// None of the platforms: the plan fails, naming the image.
	_, err = bundle.Export(ctx, bundle.ExportOptions{References: []string{ref}, Output: filepath.Join(t.TempDir(), "n"), Source: plain, Platforms: []ocispec.Platform{{OS: "linux", Architecture: "s390x"}}})
	if !errors.Is(err, bundle.ErrNoPlatform) || !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), "linux/arm64") {
		t.Fatalf("no matching platform: %v", err)
	}
}
