// Command demo runs ferry's main job end to end on this machine, with the
// ferry binary a user would run: it starts two real registries on 127.0.0.1
// (an "internet side" source and an "air-gapped" destination), fills the
// source with generated images, exports a full bundle, imports it, publishes
// new versions, exports a delta against the first bundle, imports that,
// verifies, and prints what travelled. Everything it starts, it stops.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"oras.land/oras-go/v2/registry/remote"

	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

func main() {
	ferry := flag.String("ferry", "bin/ferry", "path to the ferry binary")
	work := flag.String("work", "", "working directory (default: a temp dir, removed at the end)")
	flag.Parse()
	if err := run(*ferry, *work); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func run(ferry, work string) error {
	ctx := context.Background()
	ferry, err := filepath.Abs(ferry)
	if err != nil {
		return err
	}
	if work == "" {
		if work, err = os.MkdirTemp("", "ferry-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	dstKind := regtest.Debian
	if _, err := os.Stat(regtest.DebianBinary); err != nil {
		dstKind = regtest.Distribution
	}
	step("starting registries")
	src, err := regtest.Start(ctx, regtest.Distribution, filepath.Join(work, "internet-registry"), regtest.Options{})
	if err != nil {
		return err
	}
	defer src.Stop()
	dst, err := regtest.Start(ctx, dstKind, filepath.Join(work, "airgap-registry"), regtest.Options{})
	if err != nil {
		return err
	}
	defer dst.Stop()
	fmt.Printf("  internet side: %s on %s\n  air-gapped:    %s on %s\n", src.Kind, src.Host, dst.Kind, dst.Host)

	step("generating version 1 images and pushing them to the internet-side registry")
	v1, err := imagegen.Generate(imagegen.Options{Apps: 4, LayerSize: 2 << 20, Version: 1})
	if err != nil {
		return err
	}
	if err := v1.Push(ctx, src.Host); err != nil {
		return err
	}
	imagesV1 := writeImages(work, "images-v1.txt", v1, src.Host)

	full := filepath.Join(work, "bundle-v1")
	step("ferry export (full bundle)")
	if err := sh(ferry, "export", "--images-file", imagesV1, "-o", full, "--src-plain-http"); err != nil {
		return err
	}
	step("ferry verify")
	if err := sh(ferry, "verify", full); err != nil {
		return err
	}
	step("ferry import (full bundle) into the air-gapped registry")
	if err := sh(ferry, "import", full, "--to", dst.Host+"/mirror", "--dest-plain-http"); err != nil {
		return err
	}

	step("publishing version 2: new app layers on the same base")
	v2, err := imagegen.Generate(imagegen.Options{Apps: 4, LayerSize: 2 << 20, Version: 2})
	if err != nil {
		return err
	}
	if err := v2.Push(ctx, src.Host); err != nil {
		return err
	}
	imagesV2 := writeImages(work, "images-v2.txt", v2, src.Host)

	delta := filepath.Join(work, "bundle-v2-delta")
	step("ferry export --baseline bundle-v1/ferry.json (delta bundle)")
	if err := sh(ferry, "export", "--images-file", imagesV2, "--baseline", filepath.Join(full, layout.FileBundle), "-o", delta, "--src-plain-http"); err != nil {
		return err
	}
	step("ferry verify --against the air-gapped registry (are the omitted blobs there?)")
	if err := sh(ferry, "verify", delta, "--against", dst.Host+"/mirror", "--dest-plain-http"); err != nil {
		return err
	}
	step("ferry import (delta bundle)")
	if err := sh(ferry, "import", delta, "--to", dst.Host+"/mirror", "--dest-plain-http"); err != nil {
		return err
	}
	step("ferry inventory: what the air-gapped registry holds now (a baseline for the next trip)")
	if err := sh(ferry, "inventory", dst.Host+"/mirror", "-o", filepath.Join(work, "inventory.json"), "--dest-plain-http"); err != nil {
		return err
	}
	step("ferry inspect (delta bundle)")
	if err := sh(ferry, "inspect", delta); err != nil {
		return err
	}

	step("what travelled")
	fullSize, err := dirSize(full)
	if err != nil {
		return err
	}
	deltaSize, err := dirSize(delta)
	if err != nil {
		return err
	}
	fmt.Printf("  full bundle (v1):  %8.1f MiB\n  delta bundle (v2): %8.1f MiB (%.0f%% of a full bundle's size)\n",
		mib(fullSize), mib(deltaSize), 100*float64(deltaSize)/float64(fullSize))
	step("checking the air-gapped registry")
	for _, set := range []*imagegen.Set{v1, v2} {
		if err := check(ctx, set, dst.Host, "mirror"); err != nil {
			return err
		}
	}
	fmt.Println("\ndemo OK: every image of v1 and v2 is in the air-gapped registry with its source digest, every blob reachable")
	return nil
}

// check resolves every image of set at the destination and HEADs every
// blob of its graph there.
func check(ctx context.Context, set *imagegen.Set, host, prefix string) error {
	for _, img := range set.Images {
		repo, err := remote.NewRepository(host + "/" + prefix + "/" + img.Repository)
		if err != nil {
			return err
		}
		repo.PlainHTTP = true
		got, err := repo.Resolve(ctx, img.Tag)
		if err != nil {
			return fmt.Errorf("%s:%s at the destination: %w", img.Repository, img.Tag, err)
		}
		if got.Digest != img.Root.Digest {
			return fmt.Errorf("%s:%s is %s at the destination, %s at the source", img.Repository, img.Tag, got.Digest, img.Root.Digest)
		}
		for _, d := range set.Graph[img.Root.Digest] {
			if ok, err := repo.Exists(ctx, d); err != nil || !ok {
				return fmt.Errorf("%s: %s is not reachable at the destination (%v)", img.Repository, d.Digest, err)
			}
		}
		fmt.Printf("  %s/%s:%s  %s  ok\n", prefix, img.Repository, img.Tag, got.Digest)
	}
	return nil
}

func writeImages(work, name string, set *imagegen.Set, host string) string {
	var b strings.Builder
	b.WriteString("# images to carry, one a line\n")
	for _, img := range set.Images {
		b.WriteString(img.Reference(host) + "\n")
	}
	path := filepath.Join(work, name)
	os.WriteFile(path, []byte(b.String()), 0o644)
	return path
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }

func sh(name string, args ...string) error {
	fmt.Printf("$ ferry %s\n", strings.Join(args, " "))
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func dirSize(root string) (int64, error) {
	var n int64
	err := filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	return n, err
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
