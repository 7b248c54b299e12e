package bundle

import (
	"context"
	"os"
	"testing"

	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

// Between the plan and the transfer, an export holds no manifest's bytes
// in memory (tens of MiB at 30,000 images): they are in its scratch file,
// read back as they were, and the file is gone once the graph is closed.
func TestPlanExportSpoolsManifests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := regtest.New(t, regtest.Distribution)
	set, err := imagegen.Generate(imagegen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Push(ctx, src.Host); err != nil {
		t.Fatal(err)
	}
	var refs []Reference
	for _, img := range set.Images {
		r, err := ParseReference(img.Reference(src.Host))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	c, err := registry.New(registry.Source, registry.Options{PlainHTTP: true}, src.Host)
	if err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir()
	plan, graph, err := planExport(ctx, c, refs, 4, scratch)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Images) != len(set.Images) {
		t.Fatalf("planned %d images, want %d", len(plan.Images), len(set.Images))
	}
	manifests := 0
	for _, img := range set.Images {
		for _, d := range append(set.Graph[img.Root.Digest], img.Root) {
			if !graph.Has(d.Digest) {
				continue // a config or a layer
			}
			manifests++
			if _, held := graph.Manifest(d.Digest); held {
				t.Errorf("manifest %s is held in memory after the plan", d.Digest)
			}
			got, err := graph.Bytes(ctx, d)
			if err != nil || string(got) != string(set.Blobs[d.Digest]) {
				t.Errorf("manifest %s read back: %d bytes, %v; want the %d bytes pushed", d.Digest, len(got), err, len(set.Blobs[d.Digest]))
			}
		}
	}
	if manifests < len(set.Images) {
		t.Errorf("the graph knows %d manifests; want at least one per image (%d)", manifests, len(set.Images))
	}
	if err := graph.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("the scratch directory holds %v after Close", left)
	}
	if _, err := graph.Bytes(ctx, set.Images[0].Root); err == nil {
		t.Error("a closed graph still reads manifests")
	}
}
