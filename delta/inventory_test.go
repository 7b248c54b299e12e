package delta_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/delta"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

var plain = registry.Options{PlainHTTP: true}

func refsOf(set *imagegen.Set, host string) []string {
	var out []string
	for _, img := range set.Images {
		out = append(out, img.Reference(host))
	}
	return out
}

func digestsOf(m *spec.Manifest) []digest.Digest {
	var out []digest.Digest
	for _, b := range m.Blobs {
		out = append(out, b.Digest)
	}
	return out
}

// TestInventoryIsABaseline: after v1 is imported, an inventory of the
// destination lists exactly v1's blobs in source form, and a v3 delta
// planned against it (the recovery path when the v2 bundle was lost)
// imports completely, mounting the shared base across repositories.
func TestInventoryIsABaseline(t *testing.T) {
	t.Parallel()
	for _, kind := range regtest.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			src := regtest.New(t, kind)
			dst := regtest.New(t, kind)
			work := t.TempDir()
			v1, _ := imagegen.Generate(imagegen.Options{Version: 1})
			v3, _ := imagegen.Generate(imagegen.Options{Version: 3})
			for _, set := range []*imagegen.Set{v1, v3} {
				if err := set.Push(ctx, src.Host); err != nil {
					t.Fatal(err)
				}
			}
			full := filepath.Join(work, "v1")
			if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refsOf(v1, src.Host), Output: full, Source: plain}); err != nil {
				t.Fatal(err)
			}
			if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: full, To: dst.Host + "/mirror", Dest: plain}); err != nil {
				t.Fatal(err)
			}

			inv, err := delta.Inventory(ctx, delta.InventoryOptions{Registry: dst.Host, Client: plain, Prefix: "mirror"})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := digestsOf(inv), v1.Digests(); !slices.Equal(got, want) {
				t.Fatalf("inventory lists %d blobs, want v1's %d", len(got), len(want))
			}
			if len(inv.Images) != len(v1.Images) {
				t.Errorf("inventory found %d tags, want %d", len(inv.Images), len(v1.Images))
			}
			// Paths are in source form: the prefix is stripped.
			for _, img := range v1.Images {
				b, _ := inv.Blob(img.Root.Digest)
				if !slices.Contains(b.Repositories, img.Repository) {
					t.Errorf("%s lists repositories %v, want %s among them", img.Root.Digest, b.Repositories, img.Repository)
				}
			}
			baseline := filepath.Join(work, "baseline.json")
			if err := delta.Save(baseline, inv); err != nil {
				t.Fatal(err)
			}

			d3 := filepath.Join(work, "v3")
			res, err := bundle.Export(ctx, bundle.ExportOptions{References: refsOf(v3, src.Host), Output: d3, Source: plain, Baselines: []string{baseline}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Summary.Omitted == 0 {
				t.Fatal("nothing omitted against the inventory")
			}
			if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: d3, To: dst.Host + "/mirror", Dest: plain}); err != nil {
				t.Fatal(err)
			}
			// Every v3 image is complete at the destination.
			again, err := delta.Inventory(ctx, delta.InventoryOptions{Registry: dst.Host, Client: plain, Prefix: "mirror"})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range v3.Digests() {
				if _, ok := again.Blob(d); !ok {
					t.Errorf("v3 blob %s missing at the destination", d)
				}
			}
		})
	}
}

func TestInventoryWhenCatalogIsForbidden(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dst := regtest.New(t, regtest.Distribution)
	set, _ := imagegen.Generate(imagegen.Options{Apps: 1})
	if err := set.Push(ctx, dst.Host); err != nil {
		t.Fatal(err)
	}
	// Harbor answers _catalog with 401 for anyone but an admin.
	host := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v2/_catalog" {
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"unauthorized to list catalog"}]}`, http.StatusUnauthorized)
			return true
		}
		return false
	})
	_, err := delta.Inventory(ctx, delta.InventoryOptions{Registry: host, Client: plain})
	if !errors.Is(err, delta.ErrCatalogForbidden) {
		t.Fatalf("inventory without catalog access: %v, want ErrCatalogForbidden", err)
	}
	inv, err := delta.Inventory(ctx, delta.InventoryOptions{Registry: host, Client: plain, Repositories: []string{"team/app1", "does/not-exist"}})
	if err != nil {
		t.Fatal(err)
	}
	app := set.Images[1]
	if len(inv.Images) != 1 || inv.Images[0].Reference != "team/app1:"+app.Tag || inv.Images[0].Digest != app.Root.Digest {
		t.Fatalf("inventory by --repos: %+v", inv.Images)
	}
	if got := len(inv.Blobs); got != len(set.Graph[app.Root.Digest]) {
		t.Fatalf("inventory lists %d blobs, want %d", got, len(set.Graph[app.Root.Digest]))
	}
}

func TestLoadMergesBaselines(t *testing.T) {
	t.Parallel()
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	dir := t.TempDir()
	m1 := &spec.Manifest{MediaType: spec.MediaType, Blobs: []spec.Blob{{Digest: a, Size: 1, Repositories: []string{"x"}}, {Digest: b, Size: 2, Repositories: []string{"x"}}}}
	m2 := &spec.Manifest{MediaType: spec.MediaType, Blobs: []spec.Blob{{Digest: b, Size: 2, Repositories: []string{"y"}}, {Digest: c, Size: 3}}}
	p1, p2 := filepath.Join(dir, "1.json"), filepath.Join(dir, "2.json")
	delta.Save(p1, m1)
	delta.Save(p2, m2)
	base, err := delta.Load(p1, p2)
	if err != nil {
		t.Fatal(err)
	}
	if base.Len() != 3 || len(base.Files) != 2 {
		t.Fatalf("merged %d blobs from %d files", base.Len(), len(base.Files))
	}
	if repos, ok := base.Has(b, 2); !ok || !slices.Equal(repos, []string{"x", "y"}) {
		t.Fatalf("b: %v %v", repos, ok)
	}
	if _, ok := base.Has(c, 4); ok {
		t.Fatal("a blob listed with another size counts as held")
	}
	if _, err := delta.Load(filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("loading a missing baseline succeeded")
	}
}
