package layout

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle/spec"
)

// rawHeader is a ustar header block built by hand, for entries Go's tar
// writer refuses to write.
func rawHeader(name string, typeflag byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:], name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	copy(b[148:], "        ")
	b[156] = typeflag
	copy(b[257:], "ustar\x0000")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad(b []byte) []byte {
	if n := len(b) % 512; n != 0 {
		b = append(b, make([]byte, 512-n)...)
	}
	return b
}

func paxRecord(k, v string) string {
	rec := fmt.Sprintf(" %s=%s\n", k, v)
	n := len(rec)
	for len(fmt.Sprint(n+len(fmt.Sprint(n)))) != len(fmt.Sprint(n)) {
		n++
	}
	return fmt.Sprintf("%d%s", n+len(fmt.Sprint(n)), rec)
}

// A sparse entry (PAX GNU.sparse 1.0) declaring a terabyte in a few
// hundred bytes is refused before its body is read, and so is any entry
// that declares more bytes than the file holds.
func TestTarReaderRefusesWhatTheMediumCannotHold(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pax := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", "blobs/sha256/"+strings.Repeat("a", 64)) + paxRecord("GNU.sparse.realsize", "1099511627776")
	var sparse []byte
	sparse = append(sparse, rawHeader("PaxHeaders/x", 'x', int64(len(pax)))...)
	sparse = append(sparse, pad([]byte(pax))...)
	sparse = append(sparse, rawHeader("GNUSparseFile.0/x", '0', 512)...)
	sparse = append(sparse, pad([]byte("1\n0\n0\n"))...)
	sparse = append(sparse, make([]byte, 1024)...)
	big := append(rawHeader("blobs/sha256/"+strings.Repeat("b", 64), '0', 10<<20), make([]byte, 1536)...)
	for name, data := range map[string][]byte{"sparse": sparse, "oversized": big} {
		path := filepath.Join(dir, name+".tar")
		os.WriteFile(path, data, 0o644)
		tr, err := OpenTar(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.ReadHead()
		tr.Close()
		if !errors.Is(err, ErrUnsafeEntry) {
			t.Errorf("%s: %v, want ErrUnsafeEntry", name, err)
		}
		if name == "sparse" && (err == nil || !strings.Contains(err.Error(), "sparse")) {
			t.Errorf("the error should say the entry is sparse: %v", err)
		}
		if name == "oversized" && (err == nil || !strings.Contains(err.Error(), "more than the rest of the bundle can hold")) {
			t.Errorf("the error should say the entry is larger than the medium: %v", err)
		}
	}
}

// A split set: a volume cut short is named as the short one (not the next,
// where the stream runs out); a set without its sums file says how to
// import it anyway; the temp volumes an interrupted split export left are
// removed by the next one, and nothing else is.
func TestSplitSetShortVolumesMissingSumsAndStaleTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := filepath.Join(dir, "s.tar")
	sw, err := NewSplitWriter(base, 100)
	if err != nil {
		t.Fatal(err)
	}
	sw.Write([]byte(strings.Repeat("x", 350)))
	if err := sw.Commit(); err != nil {
		t.Fatal(err)
	}
	os.Chmod(VolumeName(base, 1), 0o644)
	os.Truncate(VolumeName(base, 1), 90)
	_, err = OpenVolumes(base)
	if !errors.Is(err, ErrVolume) || !strings.Contains(err.Error(), VolumeName(base, 1)+" is short") {
		t.Errorf("a short volume: %v", err)
	}
	os.Remove(base + SumsSuffix)
	_, err = OpenVolumes(base)
	if !errors.Is(err, ErrVolume) || !strings.Contains(err.Error(), "cat "+base+".0* > "+base) {
		t.Errorf("no sums file: %v", err)
	}

	// Temp files of an interrupted export of s.tar, and a file of the user's.
	stale := []string{TempPrefix + "s.tar.003-123", TempPrefix + "s.tar-456", TempPrefix + "s.tar.sha256sums-7"}
	keep := []string{TempPrefix + "other.tar-1", "s.tar.notes"}
	for _, n := range append(stale, keep...) {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644)
	}
	if err := RemoveStaleTemps(base); err != nil {
		t.Fatal(err)
	}
	for _, n := range stale {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			t.Errorf("%s is still there", n)
		}
	}
	for _, n := range keep {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was removed: %v", n, err)
		}
	}
}

// A ferry.json over its cap is refused by its size, before it is read: it
// must not cost the cap's worth of memory (and more to decode) to refuse.
func TestOversizedFerryJSONIsRefusedByItsSize(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileOCILayout), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	f, _ := os.Create(filepath.Join(dir, FileBundle))
	f.Truncate(spec.MaxSize + 1) // sparse on disk: no bytes written
	f.Close()
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = d.BundleFile()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("an oversized ferry.json: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Errorf("refusing it allocated %d bytes", grew)
	}
	// In a tarball, its header says so.
	hdr := rawHeader(FileBundle, '0', spec.MaxSize+1)
	path := filepath.Join(dir, "b.tar")
	os.WriteFile(path, append(hdr, make([]byte, 1024)...), 0o644)
	tr, err := NewTarReader(bytes.NewReader(append(hdr, make([]byte, 1024)...)), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.ReadHead(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("an oversized ferry.json entry: %v", err)
	}
}

// No cliff at 11,000 references: index.json has a cap of its own, sized
// for tens of thousands of images (it was read through the 4 MiB manifest
// cap, so a bundle that exported fine could not be read back).
func TestLargeIndexIsRead(t *testing.T) {
	t.Parallel()
	idx := &ocispec.Index{}
	for i := range 20000 {
		d := digest.FromString(fmt.Sprint(i))
		name := fmt.Sprintf("registry.example.com/team-%d/application-%d:v1.2.%d", i%300, i, i)
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: 1234,
			Annotations: map[string]string{ocispec.AnnotationRefName: name, "io.containerd.image.name": name}})
	}
	data, err := MarshalIndex(idx)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) <= MaxManifestSize {
		t.Fatalf("the test index is only %d bytes", len(data))
	}
	got, err := ParseIndex(bytes.NewReader(data), FileIndex)
	if err != nil || len(got.Manifests) != 20000 {
		t.Fatalf("an index of 20,000 references (%d bytes): %v", len(data), err)
	}
}

// On a FAT file system (statfs says so) a single tarball over 4 GiB - 1
// byte is refused before writing, with --split-size fat32 suggested; a
// split set of smaller volumes passes; too little free space is refused
// with what is needed and free.
func TestCheckRoomOnFAT(t *testing.T) {
	saved := fsOf
	defer func() { fsOf = saved }()
	fsOf = func(string) (FS, error) { return FS{Free: 64 << 30, MaxFile: FAT32MaxFile, Kind: "FAT"}, nil }
	err := CheckRoom("/media/stick/b.tar", 6<<30, 6<<30, false)
	if !errors.Is(err, ErrFileTooBig) || !strings.Contains(err.Error(), "--split-size fat32") || !strings.Contains(err.Error(), "FAT") {
		t.Errorf("a 6 GiB tarball on FAT: %v", err)
	}
	if err := CheckRoom("/media/stick/b.tar", 6<<30, FAT32MaxFile, true); err != nil {
		t.Errorf("volumes of fat32 size on FAT: %v", err)
	}
	fsOf = func(string) (FS, error) { return FS{Free: 1 << 20, MaxFile: -1}, nil }
	err = CheckRoom("/data/b", 2<<20, 1<<20, false)
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "2097152 more bytes, 1048576 are free") {
		t.Errorf("too little room: %v", err)
	}
}
