package bundle_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
	"github.com/ferry-oci/ferry/verify"
)

var fixedNow = func() time.Time { return time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC) }

func TestTarballForms(t *testing.T) {
	t.Parallel()
	for _, kind := range regtest.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			_, set, refs := seed(t, kind, imagegen.Options{})
			dst := regtest.New(t, kind)
			work := t.TempDir()
			forms := []struct {
				name, out, open string
				split           int64
			}{
				{"tar", "b.tar", "b.tar", 0},
				{"targz", "b.tar.gz", "b.tar.gz", 0},
				{"split", "s.tar", "s.tar.002", 64 << 10},
			}
			for _, f := range forms {
				out := filepath.Join(work, f.out)
				res, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, SplitSize: f.split, Source: plain, Now: fixedNow})
				if err != nil {
					t.Fatalf("%s: %v", f.name, err)
				}
				if res.Summary.Transferred != len(set.Digests()) {
					t.Errorf("%s: wrote %d blobs, want %d", f.name, res.Summary.Transferred, len(set.Digests()))
				}
				rep, err := verify.Path(ctx, filepath.Join(work, f.open), verify.Options{})
				if err != nil || !rep.OK() {
					t.Fatalf("%s: verify: %v %v", f.name, err, rep.Err())
				}
				if rep.Blobs != len(set.Digests()) {
					t.Errorf("%s: verified %d blobs, want %d", f.name, rep.Blobs, len(set.Digests()))
				}
				if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: filepath.Join(work, f.open), To: dst.Host + "/" + f.name, Dest: plain}); err != nil {
					t.Fatalf("%s: import: %v", f.name, err)
				}
				assertImported(t, set, dst.Host, f.name)
			}
			// The volumes of a split set concatenate to the same tarball.
			whole, _ := os.ReadFile(filepath.Join(work, "b.tar"))
			var cat []byte
			vols, _ := filepath.Glob(filepath.Join(work, "s.tar.0*"))
			if len(vols) < 3 {
				t.Fatalf("split into %d volumes", len(vols))
			}
			for _, v := range vols {
				b, _ := os.ReadFile(v)
				if int64(len(b)) > 64<<10 {
					t.Errorf("%s is %d bytes, over the split size", v, len(b))
				}
				cat = append(cat, b...)
			}
			if !bytes.Equal(cat, whole) {
				t.Error("cat s.tar.0* differs from the single-file tarball")
			}
		})
	}
}

func TestTarballEntryOrderAndPeers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, set, refs := seed(t, regtest.Distribution, imagegen.Options{})
	work := t.TempDir()
	out := filepath.Join(work, "b.tar")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, Source: plain}); err != nil {
		t.Fatal(err)
	}
	// Order: oci-layout, index.json, ferry.json, manifests, configs, layers.
	f, _ := os.Open(out)
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
	if strings.Join(names[:3], ",") != "oci-layout,index.json,ferry.json" {
		t.Fatalf("tarball starts with %v", names[:3])
	}
	kinds := map[string]int{}
	for _, img := range set.Images {
		for _, d := range set.Graph[img.Root.Digest] {
			switch {
			case layout.IsManifest(d.MediaType):
				kinds[layout.BlobName(d.Digest)] = 0
			case strings.Contains(d.MediaType, "config"):
				kinds[layout.BlobName(d.Digest)] = 1
			default:
				kinds[layout.BlobName(d.Digest)] = 2
			}
		}
	}
	last := 0
	for _, n := range names[3:] {
		if kinds[n] < last {
			t.Fatalf("%s (kind %d) comes after kind %d: want manifests, configs, layers", n, kinds[n], last)
		}
		last = kinds[n]
	}
	if len(names) != 3+len(set.Digests()) {
		t.Fatalf("%d entries, want %d", len(names), 3+len(set.Digests()))
	}

	// tar -xf gives a valid directory bundle.
	dir := filepath.Join(work, "x")
	os.Mkdir(dir, 0o755)
	if b, err := exec.Command("tar", "-xf", out, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf: %v %s", err, b)
	}
	if rep, err := verify.Path(ctx, dir, verify.Options{}); err != nil || !rep.OK() {
		t.Fatalf("extracted directory does not verify: %v %v", err, rep.Err())
	}
	// skopeo reads it as an oci-archive.
	dst := regtest.New(t, regtest.Debian)
	app := set.Images[1]
	cmd := exec.Command("skopeo", "copy", "--insecure-policy", "--dest-tls-verify=false",
		"oci-archive:"+out+":"+refs[1], "docker://"+dst.Host+"/peer/app:1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy oci-archive: %v\n%s", err, b)
	}
	only := *set
	only.Images = []imagegen.Image{{Repository: "peer/app", Tag: "1", Root: app.Root}}
	assertImported(t, &only, dst.Host, "")
}

// rewriteTar copies a tarball, letting edit change or drop entries.
func rewriteTar(t *testing.T, in, out string, edit func(hdr *tar.Header, body []byte) (*tar.Header, []byte)) {
	t.Helper()
	src, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(src)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		body, _ := io.ReadAll(tr)
		hdr, body = edit(hdr, body)
		if hdr == nil {
			continue
		}
		hdr.Size = int64(len(body))
		tw.WriteHeader(hdr)
		tw.Write(body)
	}
	tw.Close()
	os.WriteFile(out, buf.Bytes(), 0o644)
}

func TestStreamImportRefusesBadTarballs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, set, refs := seed(t, regtest.Distribution, imagegen.Options{})
	work := t.TempDir()
	good := filepath.Join(work, "good.tar")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: good, Source: plain}); err != nil {
		t.Fatal(err)
	}
	layer, _ := largestLayer(set)
	layerEntry := layout.BlobName(layer)
	whole, _ := os.ReadFile(good)

	// A stream cannot be hashed whole before the first push: VerifyFirst
	// is refused, before any request, rather than silently not honoured.
	dst := regtest.New(t, regtest.Distribution)
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: good, To: dst.Host + "/m", Dest: plain, VerifyFirst: true}); !errors.Is(err, bundle.ErrInvalidOption) || !strings.Contains(err.Error(), "ferry verify") {
		t.Fatalf("VerifyFirst with a tarball: %v, want ErrInvalidOption saying what to do", err)
	}
	if n := countFiles(t, filepath.Join(dst.Dir, "storage")); n != 0 {
		t.Errorf("the destination stored %d files", n)
	}

	cases := map[string]struct {
		make func(path string)
		want string
	}{
		"flipped byte in a layer": {func(p string) {
			rewriteTar(t, good, p, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
				if h.Name == layerEntry {
					b[len(b)/2] ^= 1
				}
				return h, b
			})
		}, layerEntry},
		"truncated in the middle of a layer": {func(p string) {
			os.WriteFile(p, whole[:len(whole)*3/4], 0o644)
		}, "truncated"},
		"a layer missing": {func(p string) {
			rewriteTar(t, good, p, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
				if h.Name == layerEntry {
					return nil, nil
				}
				return h, b
			})
		}, layerEntry},
		"size disagrees with ferry.json": {func(p string) {
			rewriteTar(t, good, p, func(h *tar.Header, b []byte) (*tar.Header, []byte) {
				if h.Name == layerEntry {
					b = append(b, 0)
				}
				return h, b
			})
		}, "ferry.json says"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.tar")
			tc.make(bad)
			if rep, err := verify.Path(ctx, bad, verify.Options{}); err == nil && rep.OK() {
				t.Fatal("verify passed a bad tarball")
			} else if err == nil && !strings.Contains(rep.Err().Error(), tc.want) {
				t.Errorf("verify does not name the fault %q:\n%v", tc.want, rep.Err())
			}
			dst := regtest.New(t, regtest.Distribution)
			_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: bad, To: dst.Host + "/m", Dest: plain})
			if err == nil {
				t.Fatal("import accepted a bad tarball")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("import error does not name the fault %q:\n%v", tc.want, err)
			}
			if !errors.Is(err, verify.ErrBundleInvalid) && !errors.Is(err, layout.ErrSizeMismatch) {
				t.Errorf("import error is not a bundle error: %v", err)
			}
			assertUntagged(t, set, dst.Host, "m")
		})
	}
}

func TestSplitSetMissingOrCorruptVolume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, _, refs := seed(t, regtest.Distribution, imagegen.Options{})
	work := t.TempDir()
	out := filepath.Join(work, "s.tar")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, SplitSize: 50 << 10, Source: plain}); err != nil {
		t.Fatal(err)
	}
	// A corrupt volume is named.
	vol := out + ".002"
	data, _ := os.ReadFile(vol)
	os.Chmod(vol, 0o644)
	data[len(data)-100] ^= 1
	os.WriteFile(vol, data, 0o644)
	rep, err := verify.Path(ctx, out+".000", verify.Options{})
	if err == nil && rep.OK() {
		t.Fatal("verify passed a corrupt volume")
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	} else {
		msg = rep.Err().Error()
	}
	if !strings.Contains(msg, "s.tar.002") {
		t.Errorf("the error does not name the corrupt volume:\n%s", msg)
	}
	// A missing volume is named before anything is read.
	os.Remove(out + ".003")
	_, err = verify.Path(ctx, out+".001", verify.Options{})
	if !errors.Is(err, layout.ErrVolume) || !strings.Contains(err.Error(), "s.tar.003") {
		t.Fatalf("missing volume: %v", err)
	}
	dst := regtest.New(t, regtest.Distribution)
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out + ".000", To: dst.Host, Dest: plain}); !errors.Is(err, layout.ErrVolume) {
		t.Fatalf("import of a set with a missing volume: %v", err)
	}
}
