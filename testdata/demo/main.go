// Command demo runs ferry's main job end to end on this machine, with the
// ferry binary a user would run: it starts two real registries on 127.0.0.1
// (an "internet side" source and an "air-gapped" destination), fills the
// source with generated images, exports a full bundle, imports it, publishes
// new versions, exports a delta against the first bundle, imports that,
// verifies, and prints what travelled. Every image is signed with the real
// cosign at the source, and cosign verifies it at the destination after each
// import. Everything it starts, it stops.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"oras.land/oras-go/v2/registry/remote"

	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

func main() {
	ferry := flag.String("ferry", "bin/ferry", "path to the ferry binary")
	cosign := flag.String("cosign", "", "path to the cosign binary (default: where make test-tools puts it)")
	work := flag.String("work", "", "working directory (default: a temp dir, removed at the end)")
	flag.Parse()
	if err := run(*ferry, *cosign, *work); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

// demo is one run: the two registries, the tools, and where it works.
type demo struct {
	ctx      context.Context
	ferry    string
	cosign   string
	work     string
	keys     string // cosign.key and cosign.pub
	src, dst *regtest.Server
}

func run(ferry, cosign, work string) error {
	ferry, err := filepath.Abs(ferry)
	if err != nil {
		return err
	}
	if cosign == "" {
		home, _ := os.UserHomeDir()
		cosign = filepath.Join(home, ".cache", "ferry-tools", "cosign-v2.6.5", "cosign")
	}
	if _, err := os.Stat(cosign); err != nil {
		return fmt.Errorf("cosign is not built (%v): run 'make test-tools'", err)
	}
	if work == "" {
		if work, err = os.MkdirTemp("", "ferry-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	d := &demo{ctx: context.Background(), ferry: ferry, cosign: cosign, work: work}
	if err := d.start(); err != nil {
		return err
	}
	defer d.src.Stop()
	defer d.dst.Stop()
	v1, full, err := d.firstTrip()
	if err != nil {
		return err
	}
	v2, delta, err := d.secondTrip(full)
	if err != nil {
		return err
	}
	return d.report(full, delta, v1, v2)
}

// start runs the two registries and makes a cosign key pair.
func (d *demo) start() error {
	dstKind := regtest.Debian
	if _, err := os.Stat(regtest.DebianBinary); err != nil {
		dstKind = regtest.Distribution
	}
	step("starting registries")
	ports, err := demoPorts()
	if err != nil {
		return err
	}
	if d.src, err = regtest.Start(d.ctx, regtest.Distribution, filepath.Join(d.work, "internet-registry"), regtest.Options{Port: ports[0]}); err != nil {
		return err
	}
	if d.dst, err = regtest.Start(d.ctx, dstKind, filepath.Join(d.work, "airgap-registry"), regtest.Options{Port: ports[1]}); err != nil {
		d.src.Stop()
		return err
	}
	fmt.Printf("  internet side: %s on %s\n  air-gapped:    %s on %s\n", d.src.Kind, d.src.Host, d.dst.Kind, d.dst.Host)
	step("cosign generate-key-pair (the publisher's signing key)")
	d.keys = filepath.Join(d.work, "keys")
	if err := os.MkdirAll(d.keys, 0o700); err != nil {
		return err
	}
	return d.cosignRun("generate-key-pair")
}

// demoPorts reads DEMO_PORTS=SRC,DST (ports on 127.0.0.1, for shared
// hosts); unset picks two free ports.
func demoPorts() ([2]int, error) {
	var ports [2]int
	v := os.Getenv("DEMO_PORTS")
	if v == "" {
		return ports, nil
	}
	a, b, ok := strings.Cut(v, ",")
	var err1, err2 error
	ports[0], err1 = strconv.Atoi(strings.TrimSpace(a))
	ports[1], err2 = strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || ports[0] <= 0 || ports[1] <= 0 || ports[0] > 65535 || ports[1] > 65535 || ports[0] == ports[1] {
		return ports, fmt.Errorf("DEMO_PORTS=%q: want two different ports, SRC,DST (e.g. 5000,5001)", v)
	}
	return ports, nil
}

// firstTrip publishes and signs version 1, and carries it in a full bundle.
func (d *demo) firstTrip() (*imagegen.Set, string, error) {
	step("generating version 1 images and pushing them to the internet-side registry")
	v1, err := d.publish(1)
	if err != nil {
		return nil, "", err
	}
	step("cosign sign every v1 image (indexes recursively), cosign attest an SBOM for team/app1")
	if err := d.signAll(v1); err != nil {
		return nil, "", err
	}
	if err := d.attest(v1.Images[1]); err != nil {
		return nil, "", err
	}
	full := filepath.Join(d.work, "bundle-v1")
	step("ferry export (full bundle, with the signatures and the SBOM)")
	if err := sh(d.ferry, "export", "--images-file", d.writeImages("images-v1.txt", v1), "-o", full, "--src-plain-http"); err != nil {
		return nil, "", err
	}
	step("ferry verify")
	if err := sh(d.ferry, "verify", full); err != nil {
		return nil, "", err
	}
	step("ferry import (full bundle) into the air-gapped registry")
	if err := sh(d.ferry, "import", full, "--to", d.dst.Host+"/mirror", "--dest-plain-http"); err != nil {
		return nil, "", err
	}
	step("cosign verify at the air-gapped registry (what a signature policy checks)")
	if err := d.verifyAll(v1); err != nil {
		return nil, "", err
	}
	return v1, full, d.verifyAttestation(v1.Images[1])
}

// secondTrip publishes and signs version 2, attests an image that did not
// change, and carries only what is new in a delta bundle.
func (d *demo) secondTrip(full string) (*imagegen.Set, string, error) {
	step("publishing version 2 (new app layers on the same base), signing it, and attesting the unchanged library/base:1")
	v2, err := d.publish(2)
	if err != nil {
		return nil, "", err
	}
	if err := d.signAll(v2); err != nil {
		return nil, "", err
	}
	if err := d.attest(v2.Images[0]); err != nil {
		return nil, "", err
	}
	delta := filepath.Join(d.work, "bundle-v2-delta")
	step("ferry export --baseline bundle-v1/ferry.json (delta bundle: new layers, new signatures, the new SBOM on the old image)")
	if err := sh(d.ferry, "export", "--images-file", d.writeImages("images-v2.txt", v2), "--baseline", filepath.Join(full, layout.FileBundle), "-o", delta, "--src-plain-http"); err != nil {
		return nil, "", err
	}
	step("ferry verify --against the air-gapped registry (are the omitted blobs there?)")
	if err := sh(d.ferry, "verify", delta, "--against", d.dst.Host+"/mirror", "--dest-plain-http"); err != nil {
		return nil, "", err
	}
	step("ferry import (delta bundle)")
	if err := sh(d.ferry, "import", delta, "--to", d.dst.Host+"/mirror", "--dest-plain-http"); err != nil {
		return nil, "", err
	}
	step("cosign verify at the air-gapped registry, after the delta")
	if err := d.verifyAll(v2); err != nil {
		return nil, "", err
	}
	if err := d.verifyAttestation(v2.Images[0]); err != nil {
		return nil, "", err
	}
	step("ferry inventory: what the air-gapped registry holds now (a baseline for the next trip)")
	if err := sh(d.ferry, "inventory", d.dst.Host+"/mirror", "-o", filepath.Join(d.work, "inventory.json"), "--dest-plain-http"); err != nil {
		return nil, "", err
	}
	step("ferry inspect (delta bundle)")
	return v2, delta, sh(d.ferry, "inspect", delta)
}

// report prints what travelled and checks every image at the destination.
func (d *demo) report(full, delta string, sets ...*imagegen.Set) error {
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
	for i, set := range sets {
		// v2 carries some images unchanged from v1: each version is listed
		// whole, under its own heading, so a repeat is not a double push.
		fmt.Printf("  v%d, every image of it:\n", i+1)
		if err := check(d.ctx, set, d.dst.Host, "mirror"); err != nil {
			return err
		}
	}
	fmt.Println("\ndemo OK: every image of v1 and v2 is in the air-gapped registry with its source digest, every blob reachable, every signature and attestation verified there by cosign")
	return nil
}

// publish generates a version of the images and pushes it to the source.
func (d *demo) publish(version int) (*imagegen.Set, error) {
	set, err := imagegen.Generate(imagegen.Options{Apps: 4, LayerSize: 2 << 20, Version: version})
	if err != nil {
		return nil, err
	}
	return set, set.Push(d.ctx, d.src.Host)
}

func at(host, prefix string, img imagegen.Image) string {
	if prefix != "" {
		prefix += "/"
	}
	return host + "/" + prefix + img.Repository + "@" + img.Root.Digest.String()
}

var cosignRegistryFlags = []string{"--allow-insecure-registry", "--allow-http-registry"}

// signAll signs every image of set at the source, indexes recursively.
func (d *demo) signAll(set *imagegen.Set) error {
	for _, img := range set.Images {
		args := append([]string{"sign", "--key", "cosign.key", "--tlog-upload=false", "--recursive"}, cosignRegistryFlags...)
		if err := d.cosignRun(append(args, at(d.src.Host, "", img))...); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) attest(img imagegen.Image) error {
	sbom := filepath.Join(d.keys, "sbom.json")
	os.WriteFile(sbom, []byte(`{"spdxVersion":"SPDX-2.3","name":"`+img.Repository+`","packages":[]}`), 0o644)
	args := append([]string{"attest", "--key", "cosign.key", "--tlog-upload=false", "--type", "spdxjson", "--predicate", sbom}, cosignRegistryFlags...)
	return d.cosignRun(append(args, at(d.src.Host, "", img))...)
}

// verifyAll has cosign verify every image of set at the destination.
func (d *demo) verifyAll(set *imagegen.Set) error {
	for _, img := range set.Images {
		args := append([]string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog", "-o", "text"}, cosignRegistryFlags...)
		if err := d.cosignRun(append(args, at(d.dst.Host, "mirror", img))...); err != nil {
			return err
		}
		fmt.Printf("  signature of mirror/%s:%s verified\n", img.Repository, img.Tag)
	}
	return nil
}

func (d *demo) verifyAttestation(img imagegen.Image) error {
	args := append([]string{"verify-attestation", "--key", "cosign.pub", "--insecure-ignore-tlog", "--type", "spdxjson", "-o", "text"}, cosignRegistryFlags...)
	if err := d.cosignRun(append(args, at(d.dst.Host, "mirror", img))...); err != nil {
		return err
	}
	fmt.Printf("  SBOM attestation of mirror/%s:%s verified\n", img.Repository, img.Tag)
	return nil
}

// cosignRun runs cosign in the key directory, quietly, showing its output
// only if it fails. Nothing it asks leaves the machine (regtest.CosignEnv).
func (d *demo) cosignRun(args ...string) error {
	cmd := exec.Command(d.cosign, args...)
	cmd.Dir = d.keys
	cmd.Env = append(os.Environ(), regtest.CosignEnv(d.keys)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cosign %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (d *demo) writeImages(name string, set *imagegen.Set) string {
	var b strings.Builder
	b.WriteString("# images to carry, one a line\n")
	for _, img := range set.Images {
		b.WriteString(img.Reference(d.src.Host) + "\n")
	}
	path := filepath.Join(d.work, name)
	os.WriteFile(path, []byte(b.String()), 0o644)
	return path
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
		fmt.Printf("    %s/%s:%s  %s  ok\n", prefix, img.Repository, img.Tag, got.Digest)
	}
	return nil
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
