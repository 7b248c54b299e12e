package layout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func descOf(data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(len(data))}
}

func TestVerifyReader(t *testing.T) {
	t.Parallel()
	good := []byte("hello, air gap")
	desc := descOf(good)
	flipped := bytes.Clone(good)
	flipped[3] ^= 1
	tests := []struct {
		name    string
		content []byte
		desc    ocispec.Descriptor
		wantErr error
	}{
		{"exact", good, desc, nil},
		{"empty blob", nil, descOf(nil), nil},
		{"flipped byte", flipped, desc, ErrDigestMismatch},
		{"short", good[:5], desc, ErrSizeMismatch},
		{"trailing bytes", append(bytes.Clone(good), '!'), desc, ErrSizeMismatch},
		{"descriptor size too small", good, ocispec.Descriptor{Digest: desc.Digest, Size: 3}, ErrSizeMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vr, err := NewVerifyReader(bytes.NewReader(tt.content), tt.desc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(vr)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && !bytes.Equal(got, tt.content) {
				t.Fatalf("read %q, want %q", got, tt.content)
			}
			if tt.wantErr != nil && !strings.Contains(err.Error(), tt.desc.Digest.String()) {
				t.Errorf("error %q does not name the digest", err)
			}
		})
	}
}

// A consumer that stops at desc.Size bytes (an HTTP upload with a content
// length, which then commits) must never get them all from a bad blob.
func TestVerifyReaderWithholdsTheLastBytesOfABadBlob(t *testing.T) {
	t.Parallel()
	good := bytes.Repeat([]byte("layer"), 10000)
	desc := descOf(good)
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1
	for name, content := range map[string][]byte{
		"flipped last byte": flipped,
		"trailing bytes":    append(bytes.Clone(good), 0),
	} {
		t.Run(name, func(t *testing.T) {
			vr, err := NewVerifyReader(bytes.NewReader(content), desc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(io.LimitReader(vr, desc.Size))
			if err == nil || int64(len(got)) == desc.Size {
				t.Fatalf("a consumer got %d of %d bytes of a bad blob (error %v)", len(got), desc.Size, err)
			}
		})
	}
	vr, _ := NewVerifyReader(bytes.NewReader(good), desc)
	if got, err := io.ReadAll(io.LimitReader(vr, desc.Size)); err != nil || !bytes.Equal(got, good) {
		t.Fatalf("good blob through a limit: %d bytes, %v", len(got), err)
	}
}

func TestVerifyReaderOneByteAtATime(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("ferry"), 1000)
	vr, err := NewVerifyReader(io.LimitReader(bytes.NewReader(data), 1<<20), descOf(data))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 1)
	for {
		n, err := vr.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("content changed on the way through")
	}
}

func TestValidateDigest(t *testing.T) {
	t.Parallel()
	hex := strings.Repeat("a", 64)
	tests := []struct {
		in string
		ok bool
	}{
		{"sha256:" + hex, true},
		{"sha512:" + strings.Repeat("b", 128), true},
		{"sha256:../x", false},
		{"sha256:../../etc/passwd", false},
		{"sha256:" + strings.ToUpper(hex), false},
		{"sha256:" + hex[:63], false},
		{"sha256:" + hex + "a", false},
		{"md5:" + hex[:32], false},
		{"sha384:" + strings.Repeat("c", 96), false}, // valid in go-digest, not verifiable by ferry's rules
		{"", false},
		{hex, false},
		{"sha256:" + hex[:62] + "/a", false},
	}
	for _, tt := range tests {
		err := ValidateDigest(digest.Digest(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("ValidateDigest(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("ValidateDigest(%q): %v does not wrap ErrInvalidDigest", tt.in, err)
		}
	}
	// No verifier and no path is built from a bad digest.
	if _, err := NewVerifyReader(strings.NewReader(""), ocispec.Descriptor{Digest: "sha256:../x"}); !errors.Is(err, ErrInvalidDigest) {
		t.Errorf("NewVerifyReader accepted a malformed digest: %v", err)
	}
	d := newDir(t.TempDir())
	if _, err := d.BlobPath("sha256:../../x"); !errors.Is(err, ErrInvalidDigest) {
		t.Errorf("BlobPath accepted a traversal: %v", err)
	}
}

func TestChildren(t *testing.T) {
	t.Parallel()
	cfg := descOf([]byte("{}"))
	cfg.MediaType = ocispec.MediaTypeImageConfig
	layer := descOf([]byte("layer"))
	layer.MediaType = ocispec.MediaTypeImageLayerGzip
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + jsonDesc(cfg) + `,"layers":[` + jsonDesc(layer) + `]}`
	mdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(manifest), Size: int64(len(manifest))}
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + jsonDesc(mdesc) + `]}`
	idesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString(index)}

	tests := []struct {
		name     string
		desc     ocispec.Descriptor
		data     string
		want     []digest.Digest
		wantErr  error
		contains string
	}{
		{"manifest", mdesc, manifest, []digest.Digest{cfg.Digest, layer.Digest}, nil, ""},
		{"index", idesc, index, []digest.Digest{mdesc.Digest}, nil, ""},
		{"docker manifest body under an OCI descriptor", mdesc, strings.Replace(manifest, ocispec.MediaTypeImageManifest, MediaTypeDockerManifest, 1), nil, ErrInvalidManifest, "descriptor says"},
		{"index read as a manifest", mdesc, index, nil, ErrInvalidManifest, ""},
		{"not JSON", mdesc, "{", nil, ErrInvalidManifest, ""},
		{"schema 1", ocispec.Descriptor{MediaType: mediaTypeDockerSchema1JWS, Digest: mdesc.Digest}, "{}", nil, ErrUnsupported, "schema 1"},
		{"layer is not a manifest", layer, "{}", nil, ErrInvalidManifest, ""},
		{"child with traversal digest", mdesc, strings.Replace(manifest, layer.Digest.String(), "sha256:../../etc/passwd", 1), nil, ErrInvalidManifest, "invalid digest"},
		{"index listing a layer", idesc, strings.Replace(index, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageLayerGzip, 1), nil, ErrInvalidManifest, "not a manifest"},
		{"manifest without config", mdesc, `{"schemaVersion":2,"layers":[]}`, nil, ErrInvalidManifest, "no config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Children(tt.desc, []byte(tt.data))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.contains) {
					t.Fatalf("error %v, want %v containing %q", err, tt.wantErr, tt.contains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var digests []digest.Digest
			for _, c := range got {
				digests = append(digests, c.Digest)
			}
			if !slices.Equal(digests, tt.want) {
				t.Fatalf("children %v, want %v", digests, tt.want)
			}
		})
	}
}

func jsonDesc(d ocispec.Descriptor) string {
	return `{"mediaType":"` + d.MediaType + `","digest":"` + d.Digest.String() + `","size":` + itoa(d.Size) + `}`
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestWriteBlobIsAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	d, err := CreateDir(root)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a layer's worth of bytes")
	desc := descOf(data)
	bad := bytes.Clone(data)
	bad[0] ^= 0xff
	if err := d.WriteBlob(ctx, desc, bytes.NewReader(bad)); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("corrupt write: %v, want ErrDigestMismatch", err)
	}
	if ok, _ := d.Exists(desc); ok {
		t.Fatal("a blob that failed verification appeared at its final path")
	}
	assertNoTempFiles(t, root)
	if err := d.WriteBlob(ctx, desc, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := d.CheckBlob(ctx, desc); err != nil {
		t.Fatal(err)
	}
	assertNoTempFiles(t, root)
	// Cancellation stops the copy and leaves nothing behind.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	other := []byte("another blob")
	if err := d.WriteBlob(cctx, descOf(other), bytes.NewReader(other)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write: %v", err)
	}
	assertNoTempFiles(t, root)
}

// Blobs are fsynced in the background; Sync waits for every one of them
// and reports the first that failed.
func TestSyncReportsBackgroundFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := CreateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	good := []byte("synced")
	if err := d.WriteBlob(ctx, descOf(good), bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatalf("Sync after a good write: %v", err)
	}
	// Hold every sync slot so the next blob's fsync waits; remove the file
	// under it, then let the fsync run: it must fail, and Sync must say so.
	busyDisk(d)
	gone := []byte("removed before its fsync")
	desc := descOf(gone)
	if err := d.WriteBlob(ctx, desc, bytes.NewReader(gone)); err != nil {
		t.Fatal(err)
	}
	path, _ := d.BlobPath(desc.Digest)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	freeDisk(d)
	if err := d.Sync(); err == nil || !strings.Contains(err.Error(), BlobName(desc.Digest)) {
		t.Fatalf("Sync = %v, want the failed fsync of %s", err, BlobName(desc.Digest))
	}
	// The failure is reported once; later blobs sync normally.
	if err := d.Sync(); err != nil {
		t.Fatalf("second Sync: %v", err)
	}
}

// Close waits for the background fsyncs, so none outlives an export that
// fails between writing blobs and the Sync before its metadata.
func TestCloseWaitsForBackgroundSyncs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := CreateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	busyDisk(d)
	gone := []byte("removed before its fsync")
	desc := descOf(gone)
	if err := d.WriteBlob(ctx, desc, bytes.NewReader(gone)); err != nil {
		t.Fatal(err)
	}
	path, _ := d.BlobPath(desc.Digest)
	os.Remove(path)
	closed := make(chan error)
	go func() { closed <- d.Close() }()
	freeDisk(d)
	// The fsync ran (and failed) before Close returned: Close says so.
	if err := <-closed; err == nil || !strings.Contains(err.Error(), BlobName(desc.Digest)) {
		t.Fatalf("Close = %v, want it to wait for the fsync of %s and report it", err, BlobName(desc.Digest))
	}
}

func assertNoTempFiles(t *testing.T, root string) {
	t.Helper()
	filepath.Walk(root, func(path string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(fi.Name(), TempPrefix) {
			t.Errorf("temp file left behind: %s", path)
		}
		return nil
	})
}

func TestOpenDirRejectsBadLayoutFile(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"missing":       "",
		"wrong version": `{"imageLayoutVersion":"2.0.0"}`,
		"not JSON":      `imageLayoutVersion`,
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			if content != "" {
				os.WriteFile(filepath.Join(root, FileOCILayout), []byte(content), 0o644)
			}
			if _, err := OpenDir(root); !errors.Is(err, ErrInvalidLayout) {
				t.Fatalf("OpenDir: %v, want ErrInvalidLayout", err)
			}
		})
	}
}

func TestParseIndex(t *testing.T) {
	t.Parallel()
	d := digest.FromString("m")
	good := `{"schemaVersion":2,"manifests":[{"mediaType":"` + ocispec.MediaTypeImageManifest + `","digest":"` + d.String() + `","size":1}]}`
	if idx, err := ParseIndex(strings.NewReader(good), "index.json"); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("%v", err)
	}
	for name, in := range map[string]string{
		"schema 1":       strings.Replace(good, `"schemaVersion":2`, `"schemaVersion":1`, 1),
		"layer in index": strings.Replace(good, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageLayerGzip, 1),
		"bad digest":     strings.Replace(good, d.String(), "sha256:ABC", 1),
		"negative size":  strings.Replace(good, `"size":1`, `"size":-5`, 1),
		"oversized":      `{"schemaVersion":2,"x":"` + strings.Repeat("a", MaxIndexSize) + `"}`,
		"truncated JSON": good[:40],
	} {
		if _, err := ParseIndex(strings.NewReader(in), "index.json"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// index.json's entries share what they repeat, and keep every value.
func TestParseIndexSharesRepeatedStrings(t *testing.T) {
	t.Parallel()
	var idx ocispec.Index
	for i := range 3 {
		ref := "docker.io/library/app:" + strconv.Itoa(i)
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(ref), Size: 1,
			Annotations: map[string]string{ocispec.AnnotationRefName: ref, "io.containerd.image.name": ref, "other": "x" + strconv.Itoa(i)}})
	}
	data, err := MarshalIndex(&idx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseIndex(bytes.NewReader(data), FileIndex)
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	for i, m := range got.Manifests {
		if !maps.Equal(m.Annotations, idx.Manifests[i].Annotations) || m.MediaType != ocispec.MediaTypeImageManifest {
			t.Fatalf("entry %d: %v %v, want %v", i, m.MediaType, m.Annotations, idx.Manifests[i].Annotations)
		}
		if !same(m.MediaType, got.Manifests[0].MediaType) {
			t.Errorf("entry %d holds its own copy of its media type", i)
		}
		if !same(m.Annotations[ocispec.AnnotationRefName], m.Annotations["io.containerd.image.name"]) {
			t.Errorf("entry %d holds its reference twice", i)
		}
	}
}

// memFetcher serves blobs from memory for graph tests.
type memFetcher map[digest.Digest][]byte

func (m memFetcher) Fetch(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	b, ok := m[d.Digest]
	if !ok {
		return nil, ErrBlobNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// leafManifest is a manifest of an empty config and no layers, in a store
// that holds both.
func leafManifest() (memFetcher, ocispec.Descriptor, string) {
	store := memFetcher{}
	cfg := []byte("{}")
	store[digest.FromBytes(cfg)] = cfg
	manifest := `{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageManifest + `","config":{"mediaType":"` + ocispec.MediaTypeImageConfig + `","digest":"` + digest.FromBytes(cfg).String() + `","size":2},"layers":[]}`
	root := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(manifest), Size: int64(len(manifest))}
	store[root.Digest] = []byte(manifest)
	return store, root, manifest
}

func TestWalkRejectsAbsurdNesting(t *testing.T) {
	t.Parallel()
	store, cur, _ := leafManifest()
	cfg := []byte("{}")
	for depth := 0; depth <= MaxDepth+1; depth++ {
		idx := `{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageIndex + `","manifests":[` + jsonDesc(cur) + `]}`
		cur = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString(idx), Size: int64(len(idx))}
		store[cur.Digest] = []byte(idx)
		graph, err := NewGraph().Walk(context.Background(), store, cur)
		if depth < MaxDepth {
			if err != nil {
				t.Fatalf("depth %d: %v", depth, err)
			}
			if len(graph) != depth+3 || graph[len(graph)-1].Digest != cur.Digest || graph[0].Digest != digest.FromBytes(cfg) {
				t.Fatalf("depth %d: graph %v not children-first", depth, graph)
			}
		} else if !errors.Is(err, ErrInvalidManifest) {
			t.Fatalf("depth %d: %v, want ErrInvalidManifest", depth, err)
		}
	}
}

func TestReadManifestRefusesHugeDescriptors(t *testing.T) {
	t.Parallel()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("x"), Size: MaxManifestSize + 1}
	fetched := false
	_, err := ReadManifest(context.Background(), fetchFunc(func() { fetched = true }), desc)
	if !errors.Is(err, ErrTooLarge) || fetched {
		t.Fatalf("err %v, fetched %v: want ErrTooLarge before any fetch", err, fetched)
	}
}

type fetchFunc func()

func (f fetchFunc) Fetch(context.Context, ocispec.Descriptor) (io.ReadCloser, error) {
	f()
	return io.NopCloser(strings.NewReader("")), nil
}

// index.json is written a descriptor at a time, in a slice of exactly its
// size, and its bytes are those of json.MarshalIndent: every optional field,
// an empty list, and strings that MarshalIndent escapes.
func TestMarshalIndexIsMarshalIndent(t *testing.T) {
	t.Parallel()
	a, b := descOf([]byte("a")), descOf([]byte("b"))
	a.MediaType, b.MediaType = ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex
	a.Annotations = map[string]string{ocispec.AnnotationRefName: "r/a:<1>&", "io.containerd.image.name": "r/a:1"}
	b.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	full := &ocispec.Index{ArtifactType: "application/x", Manifests: []ocispec.Descriptor{a, b}, Subject: &b, Annotations: map[string]string{"k": "v"}}
	for _, idx := range []*ocispec.Index{full, {}, {Manifests: []ocispec.Descriptor{}}} {
		got, err := MarshalIndex(idx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != cap(got) {
			t.Errorf("MarshalIndex: %d bytes in a slice of capacity %d", len(got), cap(got))
		}
		if idx.Manifests == nil {
			idx.Manifests = []ocispec.Descriptor{} // MarshalIndent's null is written as []
		}
		want, err := json.MarshalIndent(idx, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if want = append(want, '\n'); !bytes.Equal(got, want) {
			t.Errorf("MarshalIndex:\n%s\nMarshalIndent:\n%s", got, want)
		}
	}
	// IndexOf makes the same bytes from descriptors made one at a time.
	plain := &ocispec.Index{Manifests: []ocispec.Descriptor{a, b}}
	want, _ := MarshalIndex(plain)
	got, err := IndexOf(2, func(i int) ocispec.Descriptor { return plain.Manifests[i] })
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("IndexOf: %v\n%s\nMarshalIndex:\n%s", err, got, want)
	}
}

// A graph over a bundle keeps each manifest's children, not its bytes:
// Bytes reads them again, verified, and a manifest changed since the walk
// is refused.
func TestGraphOverKeepsNoBytes(t *testing.T) {
	t.Parallel()
	store, root, manifest := leafManifest()
	cfg := []byte("{}")
	ctx := context.Background()

	g := NewGraphOver(store)
	if _, err := g.Walk(ctx, store, root); err != nil {
		t.Fatal(err)
	}
	if _, held := g.Manifest(root.Digest); held || !g.Has(root.Digest) {
		t.Errorf("after the walk: bytes held %v, known %v; want the children only", held, g.Has(root.Digest))
	}
	if got, err := g.Bytes(ctx, root); err != nil || string(got) != manifest {
		t.Errorf("Bytes: %q, %v", got, err)
	}
	store[root.Digest] = []byte(strings.Replace(manifest, `"layers":[]`, `"layers":[ ]`, 1))
	if _, err := g.Bytes(ctx, root); !errors.Is(err, ErrSizeMismatch) && !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("a manifest changed since the walk: %v", err)
	}
	if _, err := g.Bytes(ctx, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(cfg), Size: 2}); !errors.Is(err, ErrBlobNotFound) {
		t.Errorf("a manifest the graph has not read: %v", err)
	}

	// A graph that keeps bytes serves them from memory.
	kept := NewGraph()
	if _, err := kept.Walk(ctx, memFetcher{root.Digest: []byte(manifest)}, root); err != nil {
		t.Fatal(err)
	}
	if data, ok := kept.Manifest(root.Digest); !ok || string(data) != manifest {
		t.Errorf("NewGraph: bytes %q held %v", data, ok)
	}

	// A spooled graph holds the bytes in its scratch file, not in memory,
	// and reads them back verified: what it read, and what it was given.
	scratch := t.TempDir()
	spooled, err := NewSpooledGraph(scratch)
	if err != nil {
		t.Fatal(err)
	}
	defer spooled.Close()
	if walk, err := spooled.Walk(ctx, memFetcher{root.Digest: []byte(manifest)}, root); err != nil || len(walk) != 2 {
		t.Fatalf("spooled walk: %d descriptors, %v", len(walk), err)
	}
	made := `{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageIndex + `","manifests":[` + `{"mediaType":"` + ocispec.MediaTypeImageManifest + `","digest":"` + root.Digest.String() + `","size":` + fmt.Sprint(root.Size) + `}]}`
	madeDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString(made), Size: int64(len(made))}
	if err := spooled.Add(madeDesc, []byte(made)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		desc ocispec.Descriptor
		want string
	}{{root, manifest}, {madeDesc, made}} {
		if _, held := spooled.Manifest(c.desc.Digest); held || !spooled.Has(c.desc.Digest) {
			t.Errorf("spooled %s: bytes held %v, known %v; want the children only", c.desc.Digest, held, spooled.Has(c.desc.Digest))
		}
		if got, err := spooled.Bytes(ctx, c.desc); err != nil || string(got) != c.want {
			t.Errorf("spooled Bytes(%s): %q, %v", c.desc.Digest, got, err)
		}
	}
	if _, err := spooled.Bytes(ctx, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(cfg), Size: 2}); !errors.Is(err, ErrBlobNotFound) {
		t.Errorf("spooled: a manifest the graph has not read: %v", err)
	}
	// A scratch directory that is not there is refused as it is.
	if _, err := NewSpooledGraph(filepath.Join(scratch, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a spool in a missing directory: %v", err)
	}
	// The scratch file was unlinked when made: nothing is left behind.
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("the spool's directory holds %v; want nothing", left)
	}
}

// With ShareDigests, the graph keeps the canonical copy of each digest its
// manifests reference, not the one decoded from each manifest.
func TestGraphSharesDigests(t *testing.T) {
	t.Parallel()
	cfg := []byte("{}")
	canonical := digest.Digest(strings.Clone(digest.FromBytes(cfg).String()))
	manifest := `{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageManifest + `","config":{"mediaType":"` + ocispec.MediaTypeImageConfig + `","digest":"` + canonical.String() + `","size":2},"layers":[]}`
	root := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(manifest), Size: int64(len(manifest))}
	g := NewGraph()
	g.ShareDigests(func(d digest.Digest) digest.Digest {
		if d == canonical {
			return canonical
		}
		return d
	})
	graph, err := g.Walk(context.Background(), memFetcher{root.Digest: []byte(manifest)}, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range g.Children(root.Digest) {
		graph = append(graph, &c)
	}
	for _, d := range graph {
		if d.Digest == canonical && unsafe.StringData(string(d.Digest)) != unsafe.StringData(string(canonical)) {
			t.Errorf("%s: a copy decoded from the manifest is kept", d.Digest)
		}
	}
}

// Walks share the graph's descriptors: thousands of images that reach the
// same manifest hold pointers to its children, not copies, and the
// children keep only what identifies the blob.
func TestWalksShareDescriptors(t *testing.T) {
	t.Parallel()
	store, root, _ := leafManifest()
	g := NewGraph()
	first, err := g.Walk(context.Background(), store, root)
	if err != nil {
		t.Fatal(err)
	}
	root.Annotations = map[string]string{"a": "b"}
	second, err := g.Walk(context.Background(), store, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || len(second) != 2 {
		t.Fatalf("graphs of %d and %d, want config and manifest", len(first), len(second))
	}
	if first[0] != second[0] {
		t.Error("two walks hold two copies of the config's descriptor")
	}
	if last := second[1]; last.Digest != root.Digest || last.Annotations != nil {
		t.Errorf("root entry %+v: want the root without its annotations", last)
	}
}

// WalkFrom ends the graph with the caller's root itself: a report keeps
// each image's root once, not once in the image and once in its graph.
func TestWalkFromSharesTheRoot(t *testing.T) {
	t.Parallel()
	store, root, _ := leafManifest()
	got, err := NewGraph().WalkFrom(context.Background(), store, &root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != &root {
		t.Fatalf("graph %v: want the config, then the caller's root descriptor itself", got)
	}
	if _, err := NewGraph().WalkFrom(context.Background(), store, &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: root.Digest, Size: root.Size}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("walk from a layer: %v, want ErrUnsupported", err)
	}
}

// Blobs waiting for their fsync queue as paths behind at most syncJobs
// goroutines, not one goroutine each, however slow the disk.
func TestBackgroundSyncsAreBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := CreateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	busyDisk(d)
	const n = 300
	for i := range n {
		b := []byte(fmt.Sprint("blob ", i))
		if err := d.WriteBlob(ctx, descOf(b), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	d.mu.Lock()
	syncers, pending := d.syncers, len(d.pending)
	d.mu.Unlock()
	if syncers > syncJobs || pending < n-syncJobs {
		t.Fatalf("%d goroutines for %d queued fsyncs of %d blobs, want at most %d goroutines", syncers, pending, n, syncJobs)
	}
	freeDisk(d)
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.syncers != 0 || len(d.pending) != 0 {
		t.Fatalf("after Sync: %d goroutines, %d fsyncs queued", d.syncers, len(d.pending))
	}
}

// busyDisk holds every fsync slot of d, as a disk busy with other work
// would: fsyncs wait until freeDisk.
func busyDisk(d *Dir) {
	for range cap(d.syncSlot) {
		d.syncSlot <- struct{}{}
	}
}

func freeDisk(d *Dir) {
	for range cap(d.syncSlot) {
		<-d.syncSlot
	}
}

// readSizes records the size of each buffer it is asked to read into.
type readSizes struct {
	r     io.Reader
	sizes []int
}

func (r *readSizes) Read(p []byte) (int, error) {
	r.sizes = append(r.sizes, len(p))
	return r.r.Read(p)
}

// Copy reads a blob known to be small through a small buffer (a mirror's
// thousands of configs and manifests do not each hold 1 MiB), a large or
// unknown one through 1 MiB; either way every byte arrives.
func TestCopyBufferFitsTheBlob(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		n, size int64
		want    int
	}{{4 << 10, 4 << 10, smallCopy}, {2 << 20, 2 << 20, 1 << 20}, {4 << 10, -1, 1 << 20}} {
		data := bytes.Repeat([]byte{'x'}, int(c.n))
		src := &readSizes{r: bytes.NewReader(data)}
		var dst bytes.Buffer
		n, err := Copy(&dst, src, c.size)
		if err != nil || n != c.n || !bytes.Equal(dst.Bytes(), data) {
			t.Errorf("Copy of %d bytes (size %d): %d, %v", c.n, c.size, n, err)
		}
		if len(src.sizes) == 0 || src.sizes[0] != c.want {
			t.Errorf("Copy of %d bytes (size %d) read into %v; want buffers of %d", c.n, c.size, src.sizes, c.want)
		}
	}
}
