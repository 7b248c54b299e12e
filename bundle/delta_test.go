package bundle_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

func readFerryJSON(t *testing.T, dir string) *spec.Manifest {
	t.Helper()
	d, err := layout.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.BundleManifest()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func included(m *spec.Manifest) []digest.Digest {
	var out []digest.Digest
	for _, b := range m.Blobs {
		if b.Included {
			out = append(out, b.Digest)
		}
	}
	return out
}

func blobFiles(t *testing.T, dir string) []digest.Digest {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var out []digest.Digest
	for _, e := range entries {
		out = append(out, digest.Digest("sha256:"+e.Name()))
	}
	return out
}

// expectedDelta is what a delta of next over prev must carry: every blob of
// next that prev lacks, plus every manifest and index of next.
func expectedDelta(prev, next *imagegen.Set) []digest.Digest {
	old := map[digest.Digest]bool{}
	for _, d := range prev.Digests() {
		old[d] = true
	}
	var out []digest.Digest
	for _, descs := range next.Graph {
		for _, d := range descs {
			if (!old[d.Digest] || layout.IsManifest(d.MediaType)) && !slices.Contains(out, d.Digest) {
				out = append(out, d.Digest)
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestDeltaChain(t *testing.T) {
	t.Parallel()
	for _, kind := range regtest.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			src := regtest.New(t, kind)
			dst := regtest.New(t, kind)
			work := t.TempDir()
			to := dst.Host + "/mirror"
			var sets []*imagegen.Set
			var bundles []string
			for v := 1; v <= 3; v++ {
				set, err := imagegen.Generate(imagegen.Options{Version: v})
				if err != nil {
					t.Fatal(err)
				}
				if err := set.Push(ctx, src.Host); err != nil {
					t.Fatal(err)
				}
				var refs []string
				for _, img := range set.Images {
					refs = append(refs, img.Reference(src.Host))
				}
				out := filepath.Join(work, "v"+string(rune('0'+v)))
				opts := bundle.ExportOptions{References: refs, Output: out, Source: plain}
				if v > 1 {
					opts.Baselines = []string{filepath.Join(bundles[v-2], layout.FileBundle)}
				}
				res, err := bundle.Export(ctx, opts)
				if err != nil {
					t.Fatalf("export v%d: %v", v, err)
				}
				m := readFerryJSON(t, out)
				if v == 1 {
					if len(included(m)) != len(set.Digests()) || len(m.Baselines) != 0 {
						t.Fatalf("full bundle includes %d of %d blobs, baselines %v", len(included(m)), len(set.Digests()), m.Baselines)
					}
				} else {
					want := expectedDelta(sets[v-2], set)
					if got := included(m); !slices.Equal(got, want) {
						t.Fatalf("v%d delta includes\n%v\nwant\n%v", v, got, want)
					}
					if got := blobFiles(t, out); !slices.Equal(got, want) {
						t.Fatalf("v%d delta holds files %v, want %v", v, got, want)
					}
					if res.Summary.Omitted == 0 || len(m.Baselines) != 1 {
						t.Fatalf("v%d: omitted %d, baselines %v", v, res.Summary.Omitted, m.Baselines)
					}
					// The delta is small: the new app layers plus metadata.
					var newLayers int64
					for _, d := range want {
						b, _ := m.Blob(d)
						newLayers += b.Size
					}
					if res.Summary.TransferredBytes != newLayers {
						t.Errorf("v%d delta moved %d bytes, want %d", v, res.Summary.TransferredBytes, newLayers)
					}
				}
				sets = append(sets, set)
				bundles = append(bundles, out)
			}
			for i, b := range bundles {
				if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: b, To: to, Dest: plain}); err != nil {
					t.Fatalf("import v%d: %v", i+1, err)
				}
				assertImported(t, sets[i], dst.Host, "mirror")
			}
		})
	}
}

func TestDeltaImportMountsFromAnotherRepository(t *testing.T) {
	t.Parallel()
	for _, kind := range regtest.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			src, set, _ := seed(t, kind, imagegen.Options{})
			dst := regtest.New(t, kind)
			work := t.TempDir()
			to := dst.Host + "/mirror"
			base, app := set.Images[0], set.Images[1] // library/base:1, team/app1:v1 (shares base's layer)

			first := filepath.Join(work, "base")
			if _, err := bundle.Export(ctx, bundle.ExportOptions{References: []string{base.Reference(src.Host)}, Output: first, Source: plain}); err != nil {
				t.Fatal(err)
			}
			if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: first, To: to, Dest: plain}); err != nil {
				t.Fatal(err)
			}
			second := filepath.Join(work, "app")
			if _, err := bundle.Export(ctx, bundle.ExportOptions{References: []string{app.Reference(src.Host)}, Output: second, Source: plain,
				Baselines: []string{filepath.Join(first, layout.FileBundle)}}); err != nil {
				t.Fatal(err)
			}
			m := readFerryJSON(t, second)
			var omitted []spec.Blob
			for _, b := range m.Blobs {
				if !b.Included {
					omitted = append(omitted, b)
				}
			}
			if len(omitted) != 1 || !slices.Contains(omitted[0].Repositories, "library/base") {
				t.Fatalf("want the base layer omitted, living in library/base; got %+v", omitted)
			}

			// verify --against's check sees it as mountable, pushes nothing.
			dry, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: second, To: to, Dest: plain, DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if dry.Summary.Mounted != 1 {
				t.Fatalf("dry run: %d mountable, want 1", dry.Summary.Mounted)
			}
			if tags(t, dst.Host, "mirror/team/app1") != nil {
				t.Fatal("a dry run pushed a tag")
			}

			res, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: second, To: to, Dest: plain})
			if err != nil {
				t.Fatal(err)
			}
			if res.Summary.Mounted != 1 {
				t.Errorf("mounted %d blobs, want 1", res.Summary.Mounted)
			}
			img := *set
			img.Images = []imagegen.Image{app}
			assertImported(t, &img, dst.Host, "mirror")
		})
	}
}

func TestDeltaImportFailsCleanlyWhenBlobsAreMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kind := regtest.Distribution
	src, _, refs := seed(t, kind, imagegen.Options{})
	work := t.TempDir()
	full := filepath.Join(work, "full")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: full, Source: plain}); err != nil {
		t.Fatal(err)
	}
	v2, _ := imagegen.Generate(imagegen.Options{Version: 2})
	if err := v2.Push(ctx, src.Host); err != nil {
		t.Fatal(err)
	}
	deltaDir := filepath.Join(work, "delta")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: []string{v2.Images[1].Reference(src.Host)}, Output: deltaDir, Source: plain,
		Baselines: []string{filepath.Join(full, layout.FileBundle)}}); err != nil {
		t.Fatal(err)
	}
	// The full bundle was never imported: the destination is empty.
	dst := regtest.New(t, kind)
	_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: deltaDir, To: dst.Host + "/mirror", Dest: plain})
	if !errors.Is(err, bundle.ErrMissingAtDestination) {
		t.Fatalf("import of a delta into an empty registry: %v, want ErrMissingAtDestination", err)
	}
	m := readFerryJSON(t, deltaDir)
	for _, b := range m.Blobs {
		if !b.Included && !strings.Contains(err.Error(), b.Digest.String()) {
			t.Errorf("error does not list missing blob %s:\n%v", b.Digest, err)
		}
	}
	if !strings.Contains(err.Error(), "mirror/team/app1:v2") {
		t.Errorf("error does not name the image it breaks:\n%v", err)
	}
	if got := tags(t, dst.Host, "mirror/team/app1"); got != nil {
		t.Errorf("tags pushed despite the failure: %v", got)
	}
	// Each refused mount (202: an upload instead) was cancelled, not left
	// open: no session keeps its startedat or data file (distribution leaves
	// a hash state file behind even after a cancel).
	var sessions []string
	filepath.Walk(filepath.Join(dst.Dir, "storage"), func(path string, fi os.FileInfo, err error) error {
		if err == nil && strings.Contains(path, "/_uploads/") && (fi.Name() == "startedat" || fi.Name() == "data") {
			sessions = append(sessions, path)
		}
		return nil
	})
	if len(sessions) > 0 {
		t.Errorf("%d upload session(s) left open at the destination: %v", len(sessions), sessions)
	}
}

// A delta in which one image of many changed costs, at the destination,
// one tag lookup for each unchanged image (its tag already points at it:
// everything below is provably there) and a bounded number of requests for
// the changed one: requests in proportion to what changed, not to what the
// bundle lists.
func TestDeltaImportRequestsFollowWhatChanged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const apps = 40
	src, v1, refs := seed(t, regtest.Distribution, imagegen.Options{Apps: apps, LayerSize: 1 << 10, Repositories: apps / 2})
	v2, err := imagegen.Generate(imagegen.Options{Apps: 1, LayerSize: 1 << 10, Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	changed := v2.Images[1] // team/app1:v2, a new top layer over the same base
	v2.Images = []imagegen.Image{changed}
	if err := v2.Push(ctx, src.Host); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	full, delta := filepath.Join(work, "full"), filepath.Join(work, "delta")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: full, Source: plain}); err != nil {
		t.Fatal(err)
	}
	dst := regtest.New(t, regtest.Distribution)
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: full, To: dst.Host + "/m", Dest: plain}); err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: append(refs, changed.Reference(src.Host)), Output: delta, Source: plain,
		Baselines: []string{filepath.Join(full, layout.FileBundle)}}); err != nil {
		t.Fatal(err)
	}
	proxy, seen := countingProxy(t, dst)
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: delta, To: proxy + "/m", Dest: plain}); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range seen {
		total += n
	}
	t.Logf("%d requests for %d unchanged images and 1 changed", total, len(v1.Images))
	// The changed image: its tag, config and layer (asked, sent), its
	// manifest (asked, sent), its tag pushed and checked: 12 at most.
	if limit := len(v1.Images) + 12; total > limit {
		t.Errorf("a delta of 1 changed image among %d sent %d requests, more than %d:\n%v", len(v1.Images), total, limit, seen)
	}
	all := *v1
	all.Images = append(all.Images, changed)
	for d, b := range v2.Blobs {
		all.Blobs[d] = b
	}
	for d, g := range v2.Graph {
		all.Graph[d] = g
	}
	assertImported(t, &all, dst.Host, "m")
}
