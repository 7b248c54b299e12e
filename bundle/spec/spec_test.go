package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unsafe"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParse(t *testing.T) {
	t.Parallel()
	d := digest.FromString("x")
	valid := `{"mediaType":"` + MediaType + `","images":[{"reference":"docker.io/library/a:1","digest":"` + d.String() + `"}],"blobs":[{"digest":"` + d.String() + `","size":1,"included":true,"future":"ignored"}],"newField":1}`
	if m, err := Parse(strings.NewReader(valid), "ferry.json"); err != nil || len(m.Blobs) != 1 || !m.Blobs[0].Included {
		t.Fatalf("valid manifest: %v %+v", err, m)
	}
	tests := map[string]struct {
		in      string
		wantErr error
	}{
		"unknown version": {strings.Replace(valid, "bundle.v1", "bundle.v2", 1), ErrUnsupported},
		"bad digest":      {strings.Replace(valid, `"digest":"`+d.String()+`","size"`, `"digest":"sha256:../x","size"`, 1), ErrInvalidDigest},
		"negative size":   {strings.Replace(valid, `"size":1`, `"size":-1`, 1), ErrInvalid},
		"listed twice":    {strings.Replace(valid, `"blobs":[`, `"blobs":[{"digest":"`+d.String()+`","size":1},`, 1), ErrInvalid},
		"oversized":       {valid[:len(valid)-1] + `,"pad":"` + strings.Repeat("x", MaxSize) + `"}`, ErrTooLarge},
		"not JSON":        {"[", ErrInvalid},
		"invalid UTF-8":   {strings.Replace(valid, "docker.io", "docker\xff.io", 1), ErrInvalid},
		"misspelled key":  {strings.Replace(valid, `"included":true`, `"inclued":true`, 1), ErrInvalid},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.in), "ferry.json")
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("%v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "ferry.json") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestMarshalIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := digest.FromString("a"), digest.FromString("b")
	m1 := &Manifest{MediaType: MediaType, Blobs: []Blob{{Digest: b, Repositories: []string{"z", "y"}}, {Digest: a}}}
	m2 := &Manifest{MediaType: MediaType, Blobs: []Blob{{Digest: a}, {Digest: b, Repositories: []string{"y", "z"}}}}
	j1, _ := m1.Marshal()
	j2, _ := m2.Marshal()
	if !bytes.Equal(j1, j2) {
		t.Fatalf("same content, different bytes:\n%s\n%s", j1, j2)
	}
	back, err := Parse(bytes.NewReader(j1), "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := back.Blob(b); !ok {
		t.Fatal("Blob lookup failed after a round trip")
	}
}

func FuzzParse(f *testing.F) {
	d := digest.FromString("x").String()
	f.Add(`{"mediaType":"` + MediaType + `","images":[{"reference":"a/b:c","digest":"` + d + `"}],"blobs":[{"digest":"` + d + `","size":3,"repositories":["a/b"],"included":false}],"baselines":["` + d + `"]}`)
	f.Add(`{"mediaType":"application/vnd.ferry.bundle.v9+json"}`)
	f.Fuzz(func(t *testing.T, in string) {
		m, err := Parse(strings.NewReader(in), "ferry.json")
		if err != nil {
			return
		}
		seen := map[digest.Digest]bool{}
		for _, b := range m.Blobs {
			if ValidateDigest(b.Digest) != nil || b.Size < 0 || seen[b.Digest] {
				t.Fatalf("accepted a bad blob %+v", b)
			}
			seen[b.Digest] = true
		}
		// What parses, re-marshals and parses to the same thing.
		out, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(bytes.NewReader(out), "again"); err != nil {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

// Marshal writes a value at a time, and its bytes are exactly those of
// json.MarshalIndent with a two-space indent, empty lists included, in a
// slice of exactly their size.
func TestMarshalIsMarshalIndent(t *testing.T) {
	t.Parallel()
	a, b := digest.FromString("a"), digest.FromString("b")
	full := &Manifest{
		MediaType: MediaType, Created: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Creator: "ferry <test> & co",
		Images:    []Image{{Reference: "r/a:1", Digest: a, MediaType: ocispec.MediaTypeImageManifest, Platforms: []string{"linux/amd64"}, Original: b}, {Reference: "r/b:2", Digest: b}},
		Referrers: []Referrer{{Repository: "r/a", Subject: a, Descriptor: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: b, Size: 3, Annotations: map[string]string{"k": "v"}}, Tag: "sha256-x.sig"}},
		Blobs:     []Blob{{Digest: a, Size: 1, Repositories: []string{"r/a", "r/b"}, Included: true}, {Digest: b, Foreign: true}},
		Baselines: []digest.Digest{a},
	}
	for _, m := range []*Manifest{full, {MediaType: MediaType}} {
		got, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != cap(got) {
			t.Errorf("Marshal: %d bytes in a slice of capacity %d: a buffer's slack is kept with the document", len(got), cap(got))
		}
		want, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if want = append(want, '\n'); !bytes.Equal(got, want) {
			t.Errorf("Marshal:\n%s\nMarshalIndent:\n%s", got, want)
		}
	}
}

// A parsed ferry.json holds each repeated string once: the media types and
// repositories of thousands of blobs, and an image's digest with its
// blob's; its lists have no decoder's slack.
func TestParseSharesRepeatedStrings(t *testing.T) {
	t.Parallel()
	m := &Manifest{MediaType: MediaType}
	for i := range 5 {
		d := digest.FromString(strconv.Itoa(i))
		m.Images = append(m.Images, Image{Reference: "r/app:" + strconv.Itoa(i), Digest: d, MediaType: ocispec.MediaTypeImageManifest})
		m.Blobs = append(m.Blobs, Blob{Digest: d, Size: 1, MediaType: ocispec.MediaTypeImageManifest, Repositories: []string{"r/app"}, Included: true})
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(bytes.NewReader(data), "ferry.json")
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	for i, b := range got.Blobs {
		if !same(b.MediaType, got.Blobs[0].MediaType) || !same(b.Repositories[0], got.Blobs[0].Repositories[0]) {
			t.Errorf("blob %d holds its own copy of its media type or repository", i)
		}
	}
	for _, img := range got.Images {
		b, ok := got.Blob(img.Digest)
		if !ok || !same(string(img.Digest), string(b.Digest)) {
			t.Errorf("image %s holds its own copy of its digest", img.Reference)
		}
	}
	if cap(got.Blobs) != len(got.Blobs) || cap(got.Images) != len(got.Images) {
		t.Errorf("lists kept with slack: blobs %d/%d, images %d/%d", len(got.Blobs), cap(got.Blobs), len(got.Images), cap(got.Images))
	}
}

// ReadCapped returns exactly the document, however it arrives (in one
// read, a byte at a time, across its chunks, with a right or wrong size
// hint), and refuses one byte over the limit.
func TestReadCapped(t *testing.T) {
	t.Parallel()
	doc := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16+7) // past several chunks
	for name, read := range map[string]func(limit int64) ([]byte, error){
		"no hint": func(l int64) ([]byte, error) { return ReadCapped(bytes.NewReader(doc), l, "doc") },
		"byte-wise": func(l int64) ([]byte, error) {
			return ReadCapped(iotest.OneByteReader(bytes.NewReader(doc[:5000])), l, "doc")
		},
		"exact hint": func(l int64) ([]byte, error) { return ReadCappedHint(bytes.NewReader(doc), l, int64(len(doc)), "doc") },
		"short hint": func(l int64) ([]byte, error) { return ReadCappedHint(bytes.NewReader(doc), l, 100, "doc") },
	} {
		want := doc
		if name == "byte-wise" {
			want = doc[:5000]
		}
		got, err := read(int64(len(want)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, %v; want the %d bytes", name, len(got), err, len(want))
		}
		if cap(got) > len(got)+len(got)/8+1 {
			t.Errorf("%s: %d bytes kept in %d", name, len(got), cap(got))
		}
		if _, err := read(int64(len(want)) - 1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: one byte over the limit: %v", name, err)
		}
	}
	if _, err := ParseBytes(make([]byte, MaxSize+1), "ferry.json"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ParseBytes over MaxSize: %v", err)
	}
}
