package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
)

// writeBundle writes a generated set as a directory bundle, the way export
// does, and returns its path and the set.
func writeBundle(t *testing.T, edit func(m *spec.Manifest, idx *ocispec.Index)) (string, *imagegen.Set) {
	t.Helper()
	set, err := imagegen.Generate(imagegen.Options{Apps: 2, LayerSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "bundle")
	dir, err := layout.CreateDir(root)
	if err != nil {
		t.Fatal(err)
	}
	m := &spec.Manifest{MediaType: spec.MediaType}
	idx := &ocispec.Index{}
	seen := map[digest.Digest]bool{}
	for _, img := range set.Images {
		ref := "docker.io/" + img.Repository + ":" + img.Tag
		d := img.Root
		d.Annotations = map[string]string{ocispec.AnnotationRefName: ref}
		idx.Manifests = append(idx.Manifests, d)
		m.Images = append(m.Images, spec.Image{Reference: ref, Digest: img.Root.Digest, MediaType: img.Root.MediaType})
		for _, b := range set.Graph[img.Root.Digest] {
			if seen[b.Digest] {
				continue
			}
			seen[b.Digest] = true
			if err := dir.WriteBlob(context.Background(), b, bytes.NewReader(set.Blobs[b.Digest])); err != nil {
				t.Fatal(err)
			}
			m.Blobs = append(m.Blobs, spec.Blob{Digest: b.Digest, Size: b.Size, MediaType: b.MediaType, Repositories: []string{img.Repository}, Included: true})
		}
	}
	m.Sort()
	if edit != nil {
		edit(m, idx)
	}
	if err := dir.WriteIndex(idx); err != nil {
		t.Fatal(err)
	}
	if err := dir.WriteBundleManifest(m); err != nil {
		t.Fatal(err)
	}
	return root, set
}

func check(t *testing.T, root string) *Report {
	t.Helper()
	rep, err := Path(context.Background(), root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// omitFirstLayer marks the first layer ferry.json lists as omitted (a
// baseline holds it) and returns its digest.
func omitFirstLayer(m *spec.Manifest) digest.Digest {
	for i := range m.Blobs {
		if m.Blobs[i].MediaType == ocispec.MediaTypeImageLayerGzip {
			m.Blobs[i].Included = false
			return m.Blobs[i].Digest
		}
	}
	return ""
}

func topLayer(t *testing.T, set *imagegen.Set) ocispec.Descriptor {
	img := set.Images[1] // team/app1
	data := set.Blobs[img.Root.Digest]
	var man ocispec.Manifest
	if err := jsonUnmarshal(data, &man); err != nil {
		t.Fatal(err)
	}
	return man.Layers[len(man.Layers)-1]
}

func TestCleanBundle(t *testing.T) {
	t.Parallel()
	root, set := writeBundle(t, nil)
	rep := check(t, root)
	if !rep.OK() || rep.Blobs != len(set.Digests()) || len(rep.Images) != len(set.Images) {
		t.Fatalf("clean bundle: %v, %d blobs, %d images", rep.Err(), rep.Blobs, len(rep.Images))
	}
}

func TestProblemsNameTheBlobAndTheImages(t *testing.T) {
	t.Parallel()
	t.Run("missing layer, not omitted", func(t *testing.T) {
		root, set := writeBundle(t, nil)
		layer := topLayer(t, set)
		os.Remove(filepath.Join(root, layout.BlobName(layer.Digest)))
		rep := check(t, root)
		wantProblem(t, rep, layer.Digest.Encoded(), "does not list it as omitted", "docker.io/team/app1:v1")
		if err := rep.Err(); !errors.Is(err, ErrBundleInvalid) || !errors.Is(err, layout.ErrBlobNotFound) {
			t.Errorf("the report's error %v should match ErrBundleInvalid and layout.ErrBlobNotFound", err)
		}
	})
	t.Run("missing layer, omitted by ferry.json", func(t *testing.T) {
		var layer digest.Digest
		root, _ := writeBundle(t, func(m *spec.Manifest, _ *ocispec.Index) { layer = omitFirstLayer(m) })
		os.Remove(filepath.Join(root, layout.BlobName(layer)))
		rep := check(t, root)
		if !rep.OK() || rep.Omitted != 1 {
			t.Fatalf("omitted blob: %v, omitted %d", rep.Err(), rep.Omitted)
		}
	})
	t.Run("ferry.json omits a blob the directory holds", func(t *testing.T) {
		// A tarball refuses such an entry; a directory did not, and an
		// import pushed the blob ferry.json says is omitted.
		var layer digest.Digest
		root, _ := writeBundle(t, func(m *spec.Manifest, _ *ocispec.Index) { layer = omitFirstLayer(m) })
		wantProblem(t, check(t, root), layer.Encoded(), "marks this blob as omitted, yet it is in the bundle", "")
	})
	t.Run("ferry.json media type disagrees with the manifest", func(t *testing.T) {
		set, err := imagegen.Generate(imagegen.Options{Apps: 2, LayerSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		layer := topLayer(t, set)
		root, _ := writeBundle(t, func(m *spec.Manifest, _ *ocispec.Index) {
			for i := range m.Blobs {
				if m.Blobs[i].Digest == layer.Digest {
					m.Blobs[i].MediaType = "application/vnd.oci.image.config.v1+json"
				}
			}
		})
		wantProblem(t, check(t, root), layer.Digest.String(), "media type", "team/app1")
	})
	t.Run("ferry.json size disagrees", func(t *testing.T) {
		set, err := imagegen.Generate(imagegen.Options{Apps: 2, LayerSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		layer := topLayer(t, set)
		root, _ := writeBundle(t, func(m *spec.Manifest, _ *ocispec.Index) {
			for i := range m.Blobs {
				if m.Blobs[i].Digest == layer.Digest {
					m.Blobs[i].Size++
				}
			}
		})
		wantProblem(t, check(t, root), layer.Digest.String(), "ferry.json says", "team/app1")
	})
	t.Run("manifest marked omitted", func(t *testing.T) {
		var root digest.Digest
		dir, _ := writeBundle(t, func(m *spec.Manifest, idx *ocispec.Index) {
			root = idx.Manifests[0].Digest
			for i := range m.Blobs {
				if m.Blobs[i].Digest == root {
					m.Blobs[i].Included = false
				}
			}
		})
		wantProblem(t, check(t, dir), root.String(), "manifests always travel", "")
	})
	t.Run("index.json and ferry.json disagree", func(t *testing.T) {
		dir, _ := writeBundle(t, func(m *spec.Manifest, idx *ocispec.Index) {
			m.Images = m.Images[1:]
		})
		wantProblem(t, check(t, dir), "", "ferry.json does not", "")
	})
	t.Run("index.json names a manifest that is not there", func(t *testing.T) {
		dir, set := writeBundle(t, nil)
		root := set.Images[2].Root // team/app2
		os.Remove(filepath.Join(dir, layout.BlobName(root.Digest)))
		wantProblem(t, check(t, dir), root.Digest.String(), "not found", "docker.io/team/app2:v1")
	})
	t.Run("ferry.json lists a blob nothing uses", func(t *testing.T) {
		extra := digest.FromString("stray")
		dir, _ := writeBundle(t, func(m *spec.Manifest, _ *ocispec.Index) {
			m.Blobs = append(m.Blobs, spec.Blob{Digest: extra, Size: 5, Included: true})
		})
		wantProblem(t, check(t, dir), extra.String(), "no image uses it", "")
	})
	t.Run("a blob referenced with two sizes, named once", func(t *testing.T) {
		set, err := imagegen.Generate(imagegen.Options{Apps: 2, LayerSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		layer := topLayer(t, set)
		var man *spec.Manifest
		var index *ocispec.Index
		dir, _ := writeBundle(t, func(m *spec.Manifest, idx *ocispec.Index) { man, index = m, idx })
		// Two more images say the layer is one byte longer: one walked
		// before the image with the true size, one after.
		d, err := layout.CreateDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range []string{"first", "last"} {
			config := []byte(`{"architecture":"amd64","os":"linux","tag":"` + tag + `"}`)
			cd := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
			wrong := layer
			wrong.Size++
			body, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: []ocispec.Descriptor{wrong}})
			md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(body), Size: int64(len(body))}
			for b, data := range map[*ocispec.Descriptor][]byte{&cd: config, &md: body} {
				if err := d.WriteBlob(context.Background(), *b, bytes.NewReader(data)); err != nil {
					t.Fatal(err)
				}
				man.Blobs = append(man.Blobs, spec.Blob{Digest: b.Digest, Size: b.Size, MediaType: b.MediaType, Repositories: []string{"team/app1"}, Included: true})
			}
			ref := "docker.io/team/app1:" + tag
			entry := md
			entry.Annotations = map[string]string{ocispec.AnnotationRefName: ref}
			if tag == "first" {
				index.Manifests = append([]ocispec.Descriptor{entry}, index.Manifests...)
			} else {
				index.Manifests = append(index.Manifests, entry)
			}
			man.Images = append(man.Images, spec.Image{Reference: ref, Digest: md.Digest, MediaType: md.MediaType})
		}
		man.Sort()
		if err := d.WriteIndex(index); err != nil {
			t.Fatal(err)
		}
		if err := d.WriteBundleManifest(man); err != nil {
			t.Fatal(err)
		}
		rep := check(t, dir)
		wantProblem(t, rep, layer.Digest.String(), "referenced with sizes", "docker.io/team/app1:last")
		named := 0
		for _, p := range rep.Problems {
			if p.Digest == layer.Digest && p.File == "" && strings.Contains(p.Err.Error(), "referenced with sizes") {
				named++
			}
		}
		if named != 1 {
			t.Fatalf("the blob was named %d times as referenced with two sizes, want once:\n%v", named, rep.Err())
		}
	})
	t.Run("plain layout, missing layer", func(t *testing.T) {
		dir, set := writeBundle(t, nil)
		os.Remove(filepath.Join(dir, layout.FileBundle))
		layer := topLayer(t, set)
		os.Remove(filepath.Join(dir, layout.BlobName(layer.Digest)))
		rep := check(t, dir)
		if rep.Manifest != nil {
			t.Fatal("a plain layout reported a ferry.json")
		}
		wantProblem(t, rep, layer.Digest.Encoded(), "missing from the bundle", "team/app1")
	})
}

// index.json and ferry.json must list the same referrers, each either way.
func TestReferrersAgree(t *testing.T) {
	t.Parallel()
	// asReferrer lists the first image's manifest in index.json a second
	// time, as a referrer of the second image's, and in ferry.json if
	// inFerry; ferry.json also lists a referrer that is not there if stray.
	asReferrer := func(inFerry, stray bool) func(m *spec.Manifest, idx *ocispec.Index) {
		return func(m *spec.Manifest, idx *ocispec.Index) {
			r, subject := idx.Manifests[0], idx.Manifests[1].Digest
			r.Annotations = map[string]string{layout.AnnotationReferrerSubject: subject.String()}
			idx.Manifests = append(idx.Manifests, r)
			if inFerry {
				m.Referrers = append(m.Referrers, spec.Referrer{Repository: "team/app1", Subject: subject, Descriptor: ocispec.Descriptor{MediaType: r.MediaType, Digest: r.Digest, Size: r.Size}})
			}
			if stray {
				m.Referrers = append(m.Referrers, spec.Referrer{Repository: "team/app1", Subject: subject, Descriptor: ocispec.Descriptor{MediaType: r.MediaType, Digest: digest.FromString("stray"), Size: 5}})
			}
		}
	}
	root, _ := writeBundle(t, asReferrer(true, false))
	if rep := check(t, root); !rep.OK() {
		t.Fatalf("a referrer both list: %v", rep.Err())
	}
	root, _ = writeBundle(t, asReferrer(false, false))
	wantProblem(t, check(t, root), "index.json", "lists this referrer but ferry.json does not", "")
	root, _ = writeBundle(t, asReferrer(true, true))
	wantProblem(t, check(t, root), digest.FromString("stray").Encoded(), "ferry.json lists this referrer", "but index.json does not")
}

// heldIndex is a bundle directory that keeps the index it hands out.
type heldIndex struct {
	*layout.Dir
	idx *ocispec.Index
}

func (h *heldIndex) Index() (*ocispec.Index, error) {
	var err error
	h.idx, err = h.Dir.Index()
	return h.idx, err
}

// The walk keeps each image's name, not index.json's map per image it
// was read from (10 MB at 30,000 images).
func TestWalkLetsGoOfIndexAnnotations(t *testing.T) {
	t.Parallel()
	root, set := writeBundle(t, nil)
	dir, err := layout.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	src := &heldIndex{Dir: dir}
	rep, _, err := Structure(context.Background(), src)
	if err != nil || !rep.OK() {
		t.Fatalf("%v %v", err, rep.Err())
	}
	for i, d := range src.idx.Manifests {
		if d.Annotations != nil {
			t.Errorf("index entry %d still holds its annotations after the walk", i)
		}
		if want := "docker.io/" + set.Images[i].Repository + ":" + set.Images[i].Tag; rep.Images[i].Name != want {
			t.Errorf("image %d is named %q, want %q", i, rep.Images[i].Name, want)
		}
	}
}

func wantProblem(t *testing.T, rep *Report, what, why, image string) {
	t.Helper()
	err := rep.Err()
	if err == nil {
		t.Fatal("no problem reported")
	}
	for _, p := range rep.Problems {
		s := p.String()
		if strings.Contains(s, what) && strings.Contains(s, why) && strings.Contains(s, image) {
			return
		}
	}
	t.Fatalf("no problem names %q, %q and %q:\n%v", what, why, image, err)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// A report on a directory holds no ferry.json bytes through the walk, and
// checks the signature over what was parsed: an ECDSA key needs only the
// digest taken while parsing, and nothing is read again; an Ed25519 key
// needs the bytes, read again and refused when they are not those that
// were parsed. After ReleaseSignedBytes a check says so rather than
// checking nothing.
func TestSignedBytesAreNotHeld(t *testing.T) {
	t.Parallel()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]struct {
		pub  crypto.PublicKey
		sign func(manifest []byte) []byte
	}{
		"ecdsa": {&ec.PublicKey, func(m []byte) []byte {
			sum := sha256.Sum256(m)
			sig, err := ecdsa.SignASN1(rand.Reader, ec, sum[:])
			if err != nil {
				t.Fatal(err)
			}
			return sig
		}},
		"ed25519": {edPub, func(m []byte) []byte { return ed25519.Sign(edPriv, m) }},
	} {
		t.Run(name, func(t *testing.T) {
			root, _ := writeBundle(t, nil)
			file := filepath.Join(root, layout.FileBundle)
			manifest, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sig := base64.StdEncoding.EncodeToString(k.sign(manifest))
			if err := os.WriteFile(filepath.Join(root, layout.FileSignature), []byte(sig), 0o644); err != nil {
				t.Fatal(err)
			}
			keys := []crypto.PublicKey{k.pub}

			rep := check(t, root)
			if rep.manifestFile != nil {
				t.Error("the report holds ferry.json's bytes")
			}
			if err := rep.CheckSignature(keys); err != nil || rep.SignedBy != 0 {
				t.Fatalf("a signed bundle: %v (signed by %d)", err, rep.SignedBy)
			}

			// Another ferry.json is parsed, and the signed one is back by
			// the time the signature is checked: the check is over what was
			// parsed.
			if err := os.WriteFile(file, append(manifest, ' '), 0o644); err != nil {
				t.Fatal(err)
			}
			rep = check(t, root)
			if err := os.WriteFile(file, manifest, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := rep.CheckSignature(keys); !errors.Is(err, ErrBadSignature) {
				t.Errorf("ferry.json swapped under the check: %v", err)
			}

			// Parsed, then gone: only Ed25519 reads it again.
			rep = check(t, root)
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			err = rep.CheckSignature(keys)
			if ed := name == "ed25519"; ed != (err != nil) {
				t.Errorf("ferry.json gone after it was parsed: %v", err)
			}

			rep.ReleaseSignedBytes()
			if err := rep.CheckSignature(keys); !errors.Is(err, ErrReleased) {
				t.Errorf("a check after the release: %v", err)
			}

			// A tarball file: parsed as it streams by, not held; changed
			// under the check, only Ed25519 reads it again, and refuses it.
			if err := os.WriteFile(file, manifest, 0o644); err != nil {
				t.Fatal(err)
			}
			tarball := filepath.Join(t.TempDir(), "b.tar")
			writeTarOf(t, root, tarball, nil)
			rep = check(t, tarball)
			if rep.manifestFile != nil {
				t.Error("the report of a tarball file holds ferry.json's bytes")
			}
			if err := rep.CheckSignature(keys); err != nil || rep.SignedBy != 0 {
				t.Fatalf("a signed tarball: %v (signed by %d)", err, rep.SignedBy)
			}
			rep = check(t, tarball)
			changed := bytes.Replace(manifest, []byte(`"creator"`), []byte(`"Creator"`), 1)
			writeTarOf(t, root, tarball, changed)
			err = rep.CheckSignature(keys)
			if ed := name == "ed25519"; ed != errors.Is(err, ErrBadSignature) {
				t.Errorf("ferry.json changed in the tarball after it was parsed: %v", err)
			}
		})
	}
}

// writeTarOf writes the directory bundle at root as a ferry tarball at
// out, in ferry's order, with ferry.json's bytes replaced by manifest when
// it is not nil.
func writeTarOf(t *testing.T, root, out string, manifest []byte) {
	t.Helper()
	m, err := spec.ParseBytes(mustRead(t, filepath.Join(root, layout.FileBundle)), layout.FileBundle)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{layout.FileOCILayout, layout.FileIndex, layout.FileBundle, layout.FileSignature}
	for _, manifests := range []bool{true, false} {
		for _, b := range m.Blobs {
			if layout.IsManifest(b.MediaType) == manifests {
				names = append(names, layout.BlobName(b.Digest))
			}
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range names {
		data := mustRead(t, filepath.Join(root, name))
		if name == layout.FileBundle && manifest != nil {
			data = manifest
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o444}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
