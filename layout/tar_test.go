package layout

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/testdata/imagegen"
)

type entry struct {
	hdr  tar.Header
	body []byte
}

// bundleEntries is a small, valid ferry tarball as a list of entries, in
// DESIGN.md's order.
func bundleEntries(t testing.TB) []entry {
	set, err := imagegen.Generate(imagegen.Options{Apps: 1, LayerSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	img := set.Images[0]
	root := img.Root
	root.Annotations = map[string]string{ocispec.AnnotationRefName: "docker.io/library/base:1"}
	idx, _ := MarshalIndex(&ocispec.Index{Manifests: []ocispec.Descriptor{root}})
	m := &spec.Manifest{MediaType: spec.MediaType, Images: []spec.Image{{Reference: "docker.io/library/base:1", Digest: root.Digest, MediaType: root.MediaType}}}
	graph := set.Graph[root.Digest]
	for _, d := range graph {
		m.Blobs = append(m.Blobs, spec.Blob{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, Repositories: []string{"library/base"}, Included: true})
	}
	ferry, _ := m.Marshal()
	lay, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	file := func(name string, b []byte) entry {
		return entry{tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(b)), Mode: 0o444}, b}
	}
	out := []entry{file(FileOCILayout, lay), file(FileIndex, idx), file(FileBundle, ferry)}
	// graph is children first; a tarball wants manifests first.
	for i := len(graph) - 1; i >= 0; i-- {
		out = append(out, file(BlobName(graph[i].Digest), set.Blobs[graph[i].Digest]))
	}
	return out
}

func writeEntries(entries []entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		tw.WriteHeader(&h)
		tw.Write(e.body)
	}
	tw.Close()
	return buf.Bytes()
}

// readAll reads a tarball the way import does and returns the first error.
func readAll(data []byte) error {
	tr, err := NewTarReader(bytes.NewReader(data), "test.tar")
	if err != nil {
		return err
	}
	if _, err := tr.ReadHead(); err != nil {
		return err
	}
	for {
		_, r, err := tr.NextBlob()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
	}
}

func TestTarReaderAcceptsAValidBundle(t *testing.T) {
	t.Parallel()
	entries := bundleEntries(t)
	if err := readAll(writeEntries(entries)); err != nil {
		t.Fatal(err)
	}
	// With directory entries and a ./ prefix, as GNU tar writes them.
	withDirs := []entry{{tar.Header{Typeflag: tar.TypeDir, Name: "./blobs/", Mode: 0o755}, nil}}
	for _, e := range entries {
		e.hdr.Name = "./" + e.hdr.Name
		withDirs = append(withDirs, e)
	}
	if err := readAll(writeEntries(withDirs)); err != nil {
		t.Fatal(err)
	}
}

func TestTarReaderRefusesUnsafeEntries(t *testing.T) {
	t.Parallel()
	base := bundleEntries(t)
	layer := base[len(base)-1].hdr.Name
	inject := func(e entry) []entry {
		out := append([]entry{}, base[:4]...)
		out = append(out, e)
		return append(out, base[4:]...)
	}
	replace := func(name string, f func(e *entry)) []entry {
		out := append([]entry{}, base...)
		for i := range out {
			if out[i].hdr.Name == name {
				f(&out[i])
			}
		}
		return out
	}
	tests := []struct {
		name    string
		entries []entry
		wantErr error
		want    string
	}{
		{"absolute name", inject(entry{tar.Header{Typeflag: tar.TypeReg, Name: "/etc/passwd", Size: 1}, []byte("x")}), ErrUnsafeEntry, "/etc/passwd"},
		{"dot-dot", inject(entry{tar.Header{Typeflag: tar.TypeReg, Name: "blobs/../../x", Size: 1}, []byte("x")}), ErrUnsafeEntry, `".."`},
		{"symlink", inject(entry{tar.Header{Typeflag: tar.TypeSymlink, Name: "blobs/sha256/link", Linkname: "/etc/shadow"}, nil}), ErrUnsafeEntry, "not a regular file"},
		{"hardlink", inject(entry{tar.Header{Typeflag: tar.TypeLink, Name: "blobs/sha256/hard", Linkname: FileIndex}, nil}), ErrUnsafeEntry, "not a regular file"},
		{"char device", inject(entry{tar.Header{Typeflag: tar.TypeChar, Name: "dev", Devmajor: 1, Devminor: 3}, nil}), ErrUnsafeEntry, "not a regular file"},
		{"fifo", inject(entry{tar.Header{Typeflag: tar.TypeFifo, Name: "fifo"}, nil}), ErrUnsafeEntry, "not a regular file"},
		{"duplicate blob", append(append([]entry{}, base...), base[len(base)-1]), ErrUnsafeEntry, "twice"},
		{"duplicate index.json", append(append([]entry{}, base...), base[1]), ErrUnsafeEntry, "twice"},
		{"duplicate manifest, after the head", append(append([]entry{}, base...), base[3]), ErrUnsafeEntry, "twice"},
		{"duplicate blob, spelt ./", append(append([]entry{}, base...), func() entry {
			e := base[len(base)-1]
			e.hdr.Name = "./" + e.hdr.Name
			return e
		}()), ErrUnsafeEntry, "twice"},
		{"flipped byte in a layer", replace(layer, func(e *entry) { e.body = bytes.Clone(e.body); e.body[10] ^= 1 }), ErrDigestMismatch, layer},
		{"layer longer than ferry.json says", replace(layer, func(e *entry) { e.body = append(bytes.Clone(e.body), 1); e.hdr.Size++ }), ErrSizeMismatch, layer},
		{"blob before metadata", append([]entry{base[len(base)-1]}, base[:len(base)-1]...), nil, "before the bundle's metadata"},
		{"no ferry.json", append(append([]entry{}, base[:2]...), base[3:]...), nil, "ferry.json"},
		{"unknown ferry.json version", replace(FileBundle, func(e *entry) {
			e.body = bytes.Replace(e.body, []byte("bundle.v1"), []byte("bundle.v7"), 1)
		}), ErrUnsupported, "v7"},
		{"bad oci-layout", replace(FileOCILayout, func(e *entry) { e.body = []byte(`{"imageLayoutVersion":"9"}`); e.hdr.Size = int64(len(e.body)) }), ErrInvalidLayout, FileOCILayout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := readAll(writeEntries(tt.entries))
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestTarReaderDetectsGzipByContent(t *testing.T) {
	t.Parallel()
	entries := bundleEntries(t)
	var buf bytes.Buffer
	tw := NewTarWriter(&buf, time.Unix(0, 0))
	for _, e := range entries[:3] {
		tw.WriteFile(e.hdr.Name, e.body)
	}
	for _, e := range entries[3:] {
		d, _ := blobDigest(e.hdr.Name)
		if err := tw.WriteBlob(context.Background(), ocispec.Descriptor{Digest: d, Size: int64(len(e.body))}, bytes.NewReader(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	var gz bytes.Buffer
	zw := gzipWriter(&gz)
	zw.Write(buf.Bytes())
	zw.Close()
	for name, data := range map[string][]byte{"plain": buf.Bytes(), "gzip": gz.Bytes()} {
		if err := readAll(data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestTarWriterRefusesWrongBlobs(t *testing.T) {
	t.Parallel()
	tw := NewTarWriter(io.Discard, time.Unix(0, 0))
	data := []byte("blob")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: 4}
	if err := tw.WriteBlob(context.Background(), desc, strings.NewReader("blub")); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("wrong content: %v", err)
	}
	// Bytes verified already are not hashed again, but their length is
	// still checked.
	if err := tw.WriteCheckedBlob(desc, []byte("blobs")); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("checked blob of the wrong length: %v", err)
	}
	// A blob that fails is never written whole; the tarball is abandoned.
	tw = NewTarWriter(io.Discard, time.Unix(0, 0))
	if err := tw.WriteFile(FileIndex, nil); err != nil {
		t.Fatal(err)
	}
	if err := tw.WriteFile(FileIndex, nil); err == nil {
		t.Fatal("wrote index.json twice")
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"4G": 4 << 30, "700M": 700 << 20, "fat32": FAT32MaxFile, "FAT32": FAT32MaxFile, "1024": 1024, "2GiB": 2 << 30, "64k": 64 << 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1G", "G", "4X", "99999999999T"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func FuzzTarReader(f *testing.F) {
	f.Add(writeEntries(bundleEntries(f)))
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := NewTarReader(bytes.NewReader(data), "fuzz.tar")
		if err != nil {
			return
		}
		head, err := tr.ReadHead()
		if err != nil {
			return
		}
		if head.Index == nil || head.Manifest == nil {
			t.Fatal("a head without index.json or ferry.json")
		}
		for i := 0; i < 1000; i++ {
			desc, r, err := tr.NextBlob()
			if err != nil {
				return
			}
			if ValidateDescriptor(desc) != nil {
				t.Fatalf("handed out a bad descriptor %+v", desc)
			}
			io.Copy(io.Discard, r)
		}
	})
}

func gzipWriter(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) }

// A blob of an uncompressed tarball file or split set can be read again
// from its place, verified, however its header is laid out; a compressed
// tarball cannot, and says so.
func TestTarReaderReopensBlobsOfFilesAndSplitSets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	entries := bundleEntries(t)
	var layers []entry
	for i := range entries {
		if i >= 3 {
			// A PAX header in front moves the data by more than one block.
			entries[i].hdr.PAXRecords = map[string]string{"comment": strings.Repeat("x", 700)}
		}
		if i >= 4 { // after the metadata and the image's manifest
			layers = append(layers, entries[i])
		}
	}
	data := writeEntries(entries)
	dir := t.TempDir()
	plain, gz := filepath.Join(dir, "b.tar"), filepath.Join(dir, "b.tar.gz")
	if err := os.WriteFile(plain, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var zbuf bytes.Buffer
	zw := gzipWriter(&zbuf)
	zw.Write(data)
	zw.Close()
	if err := os.WriteFile(gz, zbuf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	body := map[digest.Digest][]byte{}
	for _, e := range layers {
		d, _ := blobDigest(e.hdr.Name)
		body[d] = e.body
	}
	// readTwice reads the tarball at path as import does, reading every
	// blob again after half of it went by, as after an upload cut off.
	readTwice := func(path string) *TarReader {
		t.Helper()
		tr, err := OpenTar(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		if !tr.CanReopen() {
			t.Fatalf("%s cannot be read again", path)
		}
		if _, err := tr.ReadHead(); err != nil {
			t.Fatal(err)
		}
		var reopened int
		for {
			desc, r, err := tr.NextBlob()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			io.CopyN(io.Discard, r, desc.Size/2)
			rc, err := tr.Reopen(ctx, desc)
			if err != nil {
				t.Fatalf("%s: reopen %s: %v", path, desc.Digest, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("%s: reading %s again: %v", path, desc.Digest, err)
			}
			if !bytes.Equal(got, body[desc.Digest]) {
				t.Fatalf("%s: read again, %s gives other bytes", path, desc.Digest)
			}
			reopened++
		}
		if reopened == 0 || reopened != len(body) {
			t.Fatalf("%s: read %d blobs again, want %d", path, reopened, len(body))
		}
		return tr
	}
	tr := readTwice(plain)

	// A split set whose volumes are smaller than a blob: a blob read again
	// spans volumes.
	sw, err := NewSplitWriter(filepath.Join(dir, "s.tar"), 700)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := sw.Commit(); err != nil {
		t.Fatal(err)
	}
	readTwice(VolumeName(filepath.Join(dir, "s.tar"), 2))

	// What is read again is verified again: a byte changed in the file since
	// is caught, and the entry named.
	last := layers[len(layers)-1]
	d, _ := blobDigest(last.hdr.Name)
	at := bytes.Index(data, last.body)
	changed := append([]byte{}, data...)
	changed[at] ^= 0xff
	if err := os.WriteFile(plain, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := tr.Reopen(ctx, ocispec.Descriptor{Digest: d, Size: int64(len(last.body))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), last.hdr.Name) {
		t.Errorf("a changed blob read again: %v, want a digest mismatch naming %s", err, last.hdr.Name)
	}

	ztr, err := OpenTar(gz)
	if err != nil {
		t.Fatal(err)
	}
	defer ztr.Close()
	if _, err := ztr.ReadHead(); err != nil {
		t.Fatal(err)
	}
	desc, _, err := ztr.NextBlob()
	if err != nil {
		t.Fatal(err)
	}
	if ztr.CanReopen() {
		t.Error("a gzipped tarball claims it can be read again")
	}
	if _, err := ztr.Reopen(ctx, desc); !errors.Is(err, ErrNotReopenable) {
		t.Errorf("reopen from a gzipped tarball: %v, want ErrNotReopenable", err)
	}
}

// A walk over a tarball's head keeps the manifests the head verified as
// they were read, not a second copy of each (thousands of them at scale).
func TestGraphSharesTheHeadsManifests(t *testing.T) {
	t.Parallel()
	tr, err := NewTarReader(bytes.NewReader(writeEntries(bundleEntries(t))), "test.tar")
	if err != nil {
		t.Fatal(err)
	}
	head, err := tr.ReadHead()
	if err != nil {
		t.Fatal(err)
	}
	g := NewGraph()
	walked := 0
	for _, root := range head.Index.Manifests {
		if _, err := g.Walk(context.Background(), head, root); err != nil {
			t.Fatal(err)
		}
		for d, held := range head.manifests {
			if got, ok := g.Manifest(d); ok {
				walked++
				if &got[0] != &held[0] {
					t.Errorf("the graph holds a copy of manifest %s", d)
				}
			}
		}
	}
	if walked == 0 {
		t.Fatal("the walk read no manifest of the head")
	}
}

// The children of different manifests share one copy of each media type,
// a signature's as much as a layer's: a mirror signs every image.
func TestGraphSharesMediaTypes(t *testing.T) {
	t.Parallel()
	const sigType = "application/vnd.dev.cosign.simplesigning.v1+json"
	store := memFetcher{}
	put := func(mt string, data []byte) ocispec.Descriptor {
		store[digest.FromBytes(data)] = data
		return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}
	}
	config := put(ocispec.MediaTypeImageConfig, []byte("{}"))
	g := NewGraph()
	var held []string
	for i := range 3 {
		payload := put(sigType, []byte(strconv.Itoa(i)))
		data, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
			Config: config, Layers: []ocispec.Descriptor{payload}})
		descs, err := g.Walk(context.Background(), store, put(ocispec.MediaTypeImageManifest, data))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, descs[1].MediaType)
	}
	for i, mt := range held {
		if mt != sigType || unsafe.StringData(mt) != unsafe.StringData(held[0]) {
			t.Errorf("manifest %d's signature holds its own copy of its media type %q", i, mt)
		}
	}
}

// Over a tarball that can be read again, the graph holds no manifest's
// bytes once the head lets go of them: they are read again from the file
// when asked for, verified again. A gzipped one keeps them: it cannot.
func TestGraphOverATarballReadsManifestsAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	data := writeEntries(bundleEntries(t))
	dir := t.TempDir()
	plain, gz := filepath.Join(dir, "b.tar"), filepath.Join(dir, "b.tar.gz")
	var zbuf bytes.Buffer
	zw := gzipWriter(&zbuf)
	zw.Write(data)
	zw.Close()
	for p, b := range map[string][]byte{plain: data, gz: zbuf.Bytes()} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// walk reads the head of the tarball at p into a graph as verify.Head
	// does and returns the graph, the head and the image's root.
	walk := func(p string) (*Graph, *Head, ocispec.Descriptor) {
		t.Helper()
		tr, err := OpenTar(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		head, err := tr.ReadHead()
		if err != nil {
			t.Fatal(err)
		}
		g := NewGraph()
		if again := tr.Again(); again != nil {
			g = NewGraphOver(again)
		}
		root := head.Index.Manifests[0]
		if _, err := g.Walk(ctx, head, root); err != nil {
			t.Fatal(err)
		}
		tr.ReleaseManifests()
		return g, head, root
	}

	g, head, root := walk(plain)
	want := head.Index.Manifests[0]
	if _, held := g.Manifest(root.Digest); held || head.Exists(want) {
		t.Fatalf("over %s, the graph or the head still holds the manifest's bytes", plain)
	}
	got, err := g.Bytes(ctx, root)
	if err != nil {
		t.Fatalf("reading the manifest again: %v", err)
	}
	if digest.FromBytes(got) != root.Digest {
		t.Fatal("read again, the manifest has other bytes")
	}
	// Changed in the file since: refused, naming the entry.
	at := bytes.Index(data, got)
	changed := bytes.Clone(data)
	changed[at+1] ^= 0x20
	if err := os.WriteFile(plain, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Bytes(ctx, root); !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), BlobName(root.Digest)) {
		t.Errorf("a manifest changed since it was read: %v, want a digest mismatch naming its entry", err)
	}

	zg, zhead, zroot := walk(gz)
	if _, held := zg.Manifest(zroot.Digest); !held || !zhead.Exists(zroot) {
		t.Errorf("over %s, which cannot be read again, the manifest's bytes are gone", gz)
	}
}

// WriteFileFunc writes what its func encodes under a header of the size
// given, and refuses an encoding of any other size.
func TestWriteFileFuncHoldsToItsSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		wrote string
		ok    bool
	}{{"12345", true}, {"1234", false}, {"123456", false}} {
		var out bytes.Buffer
		tw := NewTarWriter(&out, time.Unix(0, 0))
		err := tw.WriteFileFunc(FileBundle, 5, func(w io.Writer) error {
			_, err := io.WriteString(w, tc.wrote)
			return err
		})
		if err == nil {
			err = tw.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%q under a 5-byte header: %v", tc.wrote, err)
		}
	}
}

// DropUnsignedBytes: without a signature right after ferry.json, the head
// lets go of ferry.json's bytes at the first manifest; a signature there
// keeps them; one after the manifests is refused. Without it (ferry sign),
// the bytes stay.
func TestDropUnsignedBytes(t *testing.T) {
	t.Parallel()
	entries := bundleEntries(t)
	sig := entry{tar.Header{Typeflag: tar.TypeReg, Name: FileSignature, Size: 3, Mode: 0o444}, []byte("sig")}
	head := func(entries []entry, drop bool) (*Head, error) {
		tr, err := NewTarReader(bytes.NewReader(writeEntries(entries)), "test.tar")
		if err != nil {
			t.Fatal(err)
		}
		if drop {
			tr.DropUnsignedBytes()
		}
		return tr.ReadHead()
	}
	h, err := head(entries, true)
	if err != nil || h.ManifestFile != nil || h.Manifest == nil {
		t.Fatalf("unsigned, dropping: bytes held %v, parsed %v, %v; want parsed, not held", h != nil && h.ManifestFile != nil, h != nil && h.Manifest != nil, err)
	}
	if h, err := head(entries, false); err != nil || h.ManifestFile == nil {
		t.Fatalf("unsigned, for ferry sign: bytes held %v, %v; want held", err == nil && h.ManifestFile != nil, err)
	}
	signed := append(slices.Clone(entries[:3]), sig)
	signed = append(signed, entries[3:]...)
	if h, err := head(signed, true); err != nil || h.ManifestFile == nil || string(h.Signature) != "sig" {
		t.Fatalf("signed: bytes held %v, %v; want held with the signature", err == nil && h.ManifestFile != nil, err)
	}
	// The signature between the manifests and the first config: too late.
	late := append(slices.Clone(entries[:4]), sig)
	late = append(late, entries[4:]...)
	if _, err := head(late, true); !errors.Is(err, ErrInvalidLayout) || !strings.Contains(err.Error(), FileSignature) {
		t.Fatalf("signature after the manifests: %v, want ErrInvalidLayout naming %s", err, FileSignature)
	}
	if h, err := head(late, false); err != nil || string(h.Signature) != "sig" {
		t.Fatalf("signature after the manifests, for ferry sign: %v", err)
	}

	// From a file, ferry.json is parsed as it streams by and read again
	// when asked for; as unsigned, it is let go of all the same.
	ferry := entries[2].body
	dir := t.TempDir()
	fromFile := func(entries []entry) *Head {
		t.Helper()
		p := filepath.Join(dir, strconv.Itoa(len(entries))+".tar")
		if err := os.WriteFile(p, writeEntries(entries), 0o644); err != nil {
			t.Fatal(err)
		}
		tr, err := OpenTar(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		tr.DropUnsignedBytes()
		h, err := tr.ReadHead()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h = fromFile(signed)
	if h.ManifestFile != nil || h.RereadManifestFile == nil || h.ManifestSum != sha256.Sum256(ferry) || string(h.Signature) != "sig" {
		t.Fatalf("signed, from a file: bytes held %v, can read again %v, sum right %v", h.ManifestFile != nil, h.RereadManifestFile != nil, h.ManifestSum == sha256.Sum256(ferry))
	}
	if again, err := h.RereadManifestFile(); err != nil || !bytes.Equal(again, ferry) {
		t.Fatalf("ferry.json read again: %v, same bytes %v", err, bytes.Equal(again, ferry))
	}
	if h := fromFile(entries); h.ManifestFile != nil || h.RereadManifestFile != nil {
		t.Fatal("unsigned, from a file: ferry.json is still held or readable")
	}
}
