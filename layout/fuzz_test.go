package layout

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Fuzz targets for every parser of untrusted bundle input. Each must return
// an error or a value that satisfies the parser's own promises; never panic.

func FuzzParseIndex(f *testing.F) {
	d := digest.FromString("m")
	f.Add(`{"schemaVersion":2,"manifests":[{"mediaType":"` + ocispec.MediaTypeImageManifest + `","digest":"` + d.String() + `","size":1,"annotations":{"org.opencontainers.image.ref.name":"docker.io/library/a:1"}}]}`)
	f.Add(`{"schemaVersion":2,"manifests":[{"digest":"sha256:../../x","size":-1}]}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, in string) {
		idx, err := ParseIndex(strings.NewReader(in), "index.json")
		if err != nil {
			return
		}
		for _, m := range idx.Manifests {
			if ValidateDescriptor(m) != nil || !IsManifest(m.MediaType) {
				t.Fatalf("accepted a bad descriptor %+v", m)
			}
		}
	})
}

func FuzzChildren(f *testing.F) {
	cfg := `{"mediaType":"` + ocispec.MediaTypeImageConfig + `","digest":"` + digest.FromString("c").String() + `","size":1}`
	f.Add(ocispec.MediaTypeImageManifest, `{"schemaVersion":2,"config":`+cfg+`,"layers":[`+cfg+`]}`)
	f.Add(ocispec.MediaTypeImageIndex, `{"schemaVersion":2,"manifests":[{"mediaType":"`+ocispec.MediaTypeImageManifest+`","digest":"sha256:../x","size":1}]}`)
	f.Add(MediaTypeDockerManifestList, `{"manifests":null}`)
	f.Fuzz(func(t *testing.T, mediaType, data string) {
		desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromString(data), Size: int64(len(data))}
		children, err := Children(desc, []byte(data))
		if err != nil {
			return
		}
		for _, c := range children {
			if ValidateDescriptor(c) != nil {
				t.Fatalf("accepted a bad child %+v", c)
			}
		}
	})
}

func FuzzVerifyReader(f *testing.F) {
	f.Add([]byte("content"), []byte("content"))
	f.Add([]byte("content"), []byte("contenT"))
	f.Add([]byte(""), []byte("x"))
	f.Fuzz(func(t *testing.T, expected, actual []byte) {
		desc := ocispec.Descriptor{Digest: digest.FromBytes(expected), Size: int64(len(expected))}
		vr, err := NewVerifyReader(bytes.NewReader(actual), desc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(vr)
		if bytes.Equal(expected, actual) != (err == nil) {
			t.Fatalf("expected %q actual %q: err %v", expected, actual, err)
		}
		if err == nil && !bytes.Equal(got, expected) {
			t.Fatal("passed different bytes")
		}
	})
}

func FuzzParseSums(f *testing.F) {
	sum := strings.Repeat("ab", 32)
	f.Add(sum + "  b.tar.000\n" + sum + " *b.tar.001\n")
	f.Add(sum + "  ../x\n")
	f.Add(sum + "  a\n" + sum + "  a\n")
	f.Add("zz  a\n")
	f.Fuzz(func(t *testing.T, in string) {
		sums, err := parseSums(strings.NewReader(in), "b.tar.sha256sums")
		if err != nil {
			if !errors.Is(err, ErrVolume) {
				t.Fatalf("error %v does not wrap ErrVolume", err)
			}
			return
		}
		for name, s := range sums {
			if name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
				t.Fatalf("accepted the name %q", name)
			}
			if _, err := hex.DecodeString(s); err != nil || len(s) != 64 || strings.ToLower(s) != s {
				t.Fatalf("accepted the sum %q", s)
			}
		}
	})
}
