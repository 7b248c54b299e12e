package verify

import (
	"cmp"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/distribution/reference"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/layout"
)

// ErrBundleInvalid is returned (wrapped) by Report.Err when a bundle has
// problems.
var ErrBundleInvalid = errors.New("bundle failed verification")

// Invalid marks err as the bundle's failure to verify (ErrBundleInvalid,
// exit 3) when it is a fault in the bundle's content rather than a failure
// to read it: a file that does not parse, a digest or size that does not
// match, an unsafe tar entry, a document over its cap, a missing part. The
// same fault gets the same answer in every form.
func Invalid(err error) error {
	if err == nil || errors.Is(err, ErrBundleInvalid) {
		return err
	}
	if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, layout.ErrIncomplete) {
		return err // no oci-layout at all: not a bundle, rather than a bad one
	}
	for _, fault := range []error{
		layout.ErrInvalidLayout, layout.ErrInvalidManifest, layout.ErrDigestMismatch, layout.ErrSizeMismatch,
		layout.ErrInvalidDigest, layout.ErrUnsafeEntry, layout.ErrTooLarge, layout.ErrIncomplete,
		layout.ErrBlobNotFound, layout.ErrVolume, spec.ErrInvalid,
	} {
		if errors.Is(err, fault) {
			return fmt.Errorf("%w: %w", ErrBundleInvalid, err)
		}
	}
	return err
}

// Source is a bundle that can be read at random: a directory layout.
type Source interface {
	layout.Fetcher
	Name() string
	Exists(desc ocispec.Descriptor) (bool, error)
	Index() (*ocispec.Index, error)
	// OpenBundleFile opens ferry.json, to be parsed as a stream;
	// BundleFile reads its bytes, for a signature that needs them whole;
	// Signature reads ferry.json.sig's. Each error wraps fs.ErrNotExist
	// when the file is not there.
	OpenBundleFile() (io.ReadCloser, error)
	BundleFile() ([]byte, error)
	Signature() ([]byte, error)
}

// Options configure Bundle and Stream. The zero value hashes with
// layout.DefaultJobs workers, silently, and checks no signature.
type Options struct {
	// Keys, when not empty, are the public keys one of which must have
	// signed the bundle; checked before any blob is hashed.
	Keys []crypto.PublicKey
	// Jobs bounds how many blobs are hashed at once; 0 means
	// layout.DefaultJobs.
	Jobs int
	// Progress is told the bytes there are to hash (Start "verify"), the
	// bytes hashed (Add) and the end (Done); nil means silence.
	Progress Progress
}

// Progress is what verification reports to: bundle.Progress has it.
type Progress interface {
	Start(phase string, total int64)
	Add(n int64)
	Done()
}

type noProgress struct{}

func (noProgress) Start(string, int64) {}
func (noProgress) Add(int64)           {}
func (noProgress) Done()               {}

func (o Options) progress() Progress {
	if o.Progress == nil {
		return noProgress{}
	}
	return o.Progress
}

// Problem is one thing wrong with a bundle.
type Problem struct {
	// Digest is the blob at fault, if any.
	Digest digest.Digest
	// File is the path inside the bundle at fault, if any.
	File string
	// Images are the references the problem breaks.
	Images []string
	Err    error
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File + ": ")
	}
	if p.Digest != "" && p.File != layout.BlobName(p.Digest) {
		b.WriteString(p.Digest.String() + ": ")
	}
	b.WriteString(p.Err.Error())
	if len(p.Images) > 0 {
		b.WriteString(" (breaks " + strings.Join(p.Images, ", ") + ")")
	}
	return b.String()
}

// Image is one entry of index.json, an image or a referrer, and its graph.
type Image struct {
	// Name is the reference from index.json (ref.name), or the digest when
	// it has none; for a referrer, "referrer <digest>".
	Name string
	// Subject is, for a referrer, the digest of the manifest it refers to
	// (index.json's io.ferry.referrer.subject); empty for an image.
	Subject digest.Digest
	// Root is index.json's descriptor without its annotations: Name and
	// Subject say what they said.
	Root ocispec.Descriptor
	// Graph lists every descriptor reachable from Root, children first.
	Graph []*ocispec.Descriptor
}

// Report is the outcome of a verification.
type Report struct {
	Images []Image
	// Manifest is ferry.json; nil for a plain OCI layout, or when
	// ferry.json is there but does not parse (HasManifestFile, and a
	// Problem says why).
	Manifest *spec.Manifest
	// HasManifestFile is false only for a plain OCI layout: no ferry.json.
	HasManifestFile bool
	// SignedBy is the index, among the keys CheckSignature was given, of
	// the one the bundle's signature verifies with; -1 when none was
	// checked.
	SignedBy int

	// manifestFile and signature are ferry.json's and ferry.json.sig's
	// bytes (nil when absent). From a directory, ferry.json's bytes are
	// not kept (tens of MiB for tens of thousands of images) but read
	// again to check the signature, and held to manifestSum, the digest
	// of the bytes that were parsed (reread).
	manifestFile, signature []byte
	manifestSum             [sha256.Size]byte
	reread                  func() ([]byte, error)
	released                bool // ReleaseSignedBytes has dropped manifestFile
	// Graph holds every manifest read.
	Graph *layout.Graph
	// Blobs and Bytes count the distinct blobs hashed (manifests included).
	Blobs int
	Bytes int64
	// Omitted counts blobs ferry.json leaves out of the bundle because a
	// baseline holds them; Foreign, the foreign or non-distributable
	// layers left out.
	Omitted      int
	OmittedBytes int64
	Foreign      int
	Problems     []Problem

	// descs holds each blob once, sorted by digest: pointers into the
	// graphs, not a map of them. users lists the images that use each
	// blob: only a problem needs it, so it is built, once, by the first
	// (usersOf); a clean bundle of thousands of images never holds it.
	descs     []*ocispec.Descriptor
	usersOnce sync.Once
	users     map[digest.Digest][]string
	// seen records the blobs that went by, for streams.
	seen *spec.BlobSet
}

// Signed reports whether the bundle has a signature (checked or not).
func (r *Report) Signed() bool { return len(r.signature) > 0 }

// CheckSignature verifies the bundle's signature over ferry.json with any
// of keys. A bundle that is unsigned, or whose signature does not verify,
// gets a Problem (ErrUnsigned, ErrBadSignature) and the error is returned.
// With no keys it checks nothing.
func (r *Report) CheckSignature(keys []crypto.PublicKey) error {
	r.SignedBy = -1
	if len(keys) == 0 {
		return nil
	}
	if r.released {
		return ErrReleased
	}
	i, file, err := r.checkSignature(keys)
	if err != nil {
		r.add(Problem{File: file, Err: err})
		return r.Err()
	}
	r.SignedBy = i
	return nil
}

// checkSignature checks the signature over the bytes kept (a tarball's), or
// else over the digest of those parsed from a directory, reading them
// again only for an Ed25519 key, which needs them whole. It returns the
// file at fault with an error: ferry.json when it could not be read
// again, or was not what was parsed; ferry.json.sig otherwise.
func (r *Report) checkSignature(keys []crypto.PublicKey) (int, string, error) {
	bundleFault := false
	whole := func() ([]byte, error) {
		data, err := r.reread()
		switch {
		case err != nil:
			bundleFault = true
		case r.Manifest != nil && sha256.Sum256(data) != r.manifestSum:
			bundleFault = true
			err = fmt.Errorf("%w: ferry.json changed while the bundle was being checked", ErrBadSignature)
		}
		return data, err
	}
	var i int
	var err error
	switch {
	case r.manifestFile != nil || r.reread == nil || len(r.signature) == 0:
		i, err = CheckSignature(r.manifestFile, r.signature, keys)
	case r.Manifest == nil: // it did not parse: check the bytes as they are
		var data []byte
		if data, err = whole(); err == nil {
			i, err = CheckSignature(data, r.signature, keys)
		}
	default:
		i, err = checkSignature(r.manifestSum, whole, r.signature, keys)
	}
	if bundleFault {
		return i, layout.FileBundle, err
	}
	return i, layout.FileSignature, err
}

// ErrReleased: CheckSignature after ReleaseSignedBytes.
var ErrReleased = errors.New("ferry.json's bytes were released after the signature check")

// ReleaseSignedBytes drops ferry.json's bytes, kept only so that
// CheckSignature can verify them: a report that lives through a whole
// import need not hold them (3.4 MiB at 3,000 images). CheckSignature
// fails with ErrReleased afterwards.
func (r *Report) ReleaseSignedBytes() {
	r.manifestFile, r.reread, r.released = nil, nil, true
}

// OK reports whether the bundle has no problems.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Err is nil for a clean bundle, otherwise an error wrapping
// ErrBundleInvalid that lists every problem.
func (r *Report) Err() error { return r.errWith() }

// errWith is Err with more problems than the report holds.
func (r *Report) errWith(more ...Problem) error {
	all := append(slices.Clip(r.Problems), more...)
	if len(all) == 0 {
		return nil
	}
	return &Error{Problems: all}
}

// missingBlob says why a blob a manifest references is not there; it
// matches layout.ErrBlobNotFound.
type missingBlob string

func (m missingBlob) Error() string { return string(m) }
func (m missingBlob) Unwrap() error { return layout.ErrBlobNotFound }

// Error is a bundle's failed verification, with every problem found. It
// matches ErrBundleInvalid and the sentinel of each problem with errors.Is:
// errors.Is(err, layout.ErrDigestMismatch) holds after an import stopped on
// a corrupt blob.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = "  - " + p.String()
	}
	return fmt.Sprintf("%v: %d problem(s):\n%s", ErrBundleInvalid, len(e.Problems), strings.Join(lines, "\n"))
}

func (e *Error) Unwrap() []error {
	out := []error{ErrBundleInvalid}
	for _, p := range e.Problems {
		out = append(out, p.Err)
	}
	return out
}

// Fault is the error for blob desc failing verification where someone else
// read it (an import verifies the blobs it pushes as they go): it wraps
// ErrBundleInvalid and names the blob, its file and the images it breaks.
// The report is not changed, so Fault is safe for concurrent use.
func (r *Report) Fault(desc ocispec.Descriptor, err error) error {
	return r.errWith(r.blobProblemOf(desc.Digest, err))
}

// LeftOutForeign reports whether the bundle leaves d out as a foreign or
// non-distributable layer: the destination need not hold it either.
func (r *Report) LeftOutForeign(d ocispec.Descriptor) bool { return r.foreign(d) }

// foreign reports whether d is a foreign or non-distributable layer that a
// bundle may leave out for that reason: so ferry.json says, or, in a plain
// layout, its descriptor does.
func (r *Report) foreign(d ocispec.Descriptor) bool {
	if r.Manifest == nil {
		return layout.IsForeign(d)
	}
	b, ok := r.Manifest.Blob(d.Digest)
	return ok && b.Foreign && !b.Included
}

// Omitted reports whether ferry.json says d was left out of the bundle.
func (r *Report) omitted(d digest.Digest) bool {
	if r.Manifest == nil {
		return false
	}
	b, ok := r.Manifest.Blob(d)
	return ok && !b.Included
}

// Bundle verifies src. The returned error is only for a bundle that cannot
// be read at all; everything else is a Problem in the report.
func Bundle(ctx context.Context, src Source, opts Options) (*Report, error) {
	rep, present, err := Structure(ctx, src)
	if err != nil {
		return nil, err
	}
	rep.CheckSignature(opts.Keys)
	if err := rep.Hash(ctx, src, present, opts); err != nil {
		return nil, err
	}
	return rep, nil
}

// parseBundleFile parses ferry.json as a stream, never held whole (35 MB
// for 30,000 images), and returns the SHA-256 of the bytes parsed.
func parseBundleFile(src Source) (*spec.Manifest, [sha256.Size]byte, error) {
	f, err := src.OpenBundleFile()
	if err != nil {
		return nil, [sha256.Size]byte{}, err
	}
	defer f.Close()
	return spec.ParseSum(f, filepath.Join(src.Name(), layout.FileBundle))
}

// Structure checks everything but the configs' and layers' bytes: the
// layout, index.json, every manifest (read and verified), that every blob
// a manifest references is present or omitted by ferry.json, and that
// ferry.json agrees. It returns the configs and layers present, for Hash.
func Structure(ctx context.Context, src Source) (*Report, []*ocispec.Descriptor, error) {
	idx, err := src.Index()
	if err != nil {
		return nil, nil, Invalid(err)
	}
	// The graph keeps no manifest's bytes: a directory can be read again.
	rep := &Report{Graph: layout.NewGraphOver(src), HasManifestFile: true, SignedBy: -1}
	rep.Manifest, rep.manifestSum, err = parseBundleFile(src)
	rep.reread = src.BundleFile
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A plain OCI layout written by another tool.
		rep.HasManifestFile = false
	case err != nil:
		rep.add(Problem{Err: err}) // the error names the file
	}
	if rep.signature, err = src.Signature(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		rep.add(Problem{Err: err})
	}
	rep.shareDigests()
	if err := rep.walk(ctx, src, idx); err != nil {
		return nil, nil, err
	}
	var present []*ocispec.Descriptor // into the graphs: no copy of each
	for _, d := range rep.descs {
		if rep.Graph.Has(d.Digest) {
			rep.Blobs++ // read and verified by the walk
			rep.Bytes += d.Size
			continue
		}
		ok, err := src.Exists(*d)
		switch {
		case errors.Is(err, layout.ErrSizeMismatch), errors.Is(err, layout.ErrNotRegular):
			rep.blobProblem(d.Digest, err)
			continue
		case err != nil:
			return nil, nil, err
		}
		switch {
		case ok && rep.omitted(d.Digest):
			// As a tarball refuses it: the bundle must hold what ferry.json
			// says it holds, no more (an import would push it).
			rep.blobProblem(d.Digest, errors.New("ferry.json marks this blob as omitted, yet it is in the bundle"))
		case ok:
			present = append(present, d)
		case rep.foreign(*d):
			rep.Foreign++
		case rep.omitted(d.Digest):
			rep.Omitted++
			rep.OmittedBytes += d.Size
		default:
			why := missingBlob("missing from the bundle, and ferry.json does not list it as omitted")
			if rep.Manifest == nil {
				why = "missing from the bundle"
			}
			rep.blobProblem(d.Digest, why)
		}
	}
	rep.checkManifest()
	return rep, present, nil
}

// walk reads every image's graph through f and records which images use
// each blob. It lets go of each entry's annotations in idx once it has
// read them (Image keeps their Name and Subject): the index is the
// caller's, read for this walk, and at 30,000 images those maps are 10 MB
// held through it.
func (rep *Report) walk(ctx context.Context, f layout.Fetcher, idx *ocispec.Index) error {
	rep.Images = slices.Grow(rep.Images, len(idx.Manifests)) // held to the end: at its size
	for i, root := range idx.Manifests {
		idx.Manifests[i].Annotations = nil
		img := Image{Name: RefName(root), Root: root}
		if s := root.Annotations[layout.AnnotationReferrerSubject]; s != "" {
			img.Subject = digest.Digest(s)
			img.Name = "referrer " + root.Digest.String()
		}
		if img.Subject == "" {
			if err := checkName(img.Name, root); err != nil {
				rep.add(Problem{Digest: root.Digest, File: layout.FileIndex, Images: []string{img.Name}, Err: err})
			}
		}
		// Name and Subject are what the annotations say: the report does
		// not keep a map per image of index.json beside them.
		img.Root.Annotations = nil
		if rep.Manifest != nil {
			if b, ok := rep.Manifest.Blob(root.Digest); ok {
				img.Root.Digest = b.Digest
			}
		}
		// The graph ends with the image's own Root, not a copy of it: the
		// list is at its size (Grow above), so appending never moves it.
		rep.Images = append(rep.Images, img)
		last := &rep.Images[len(rep.Images)-1]
		graph, err := rep.Graph.WalkFrom(ctx, f, &last.Root)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rep.add(Problem{Digest: last.Root.Digest, Images: []string{img.Name}, Err: err})
			continue
		}
		last.Graph = graph
	}
	rep.collectDescs()
	return nil
}

// collectDescs sets descs from the images' graphs: every descriptor,
// sorted by digest (stably: in the order the walk met them), each digest
// once. A blob referenced with two sizes is a problem, named once.
func (rep *Report) collectDescs() {
	n := 0
	for _, img := range rep.Images {
		n += len(img.Graph)
	}
	all := make([]*ocispec.Descriptor, 0, n)
	for _, img := range rep.Images {
		all = append(all, img.Graph...)
	}
	slices.SortStableFunc(all, func(a, b *ocispec.Descriptor) int { return cmp.Compare(a.Digest, b.Digest) })
	out := all[:0]
	var named digest.Digest // the last blob named with two sizes
	for _, d := range all {
		if k := len(out) - 1; k >= 0 && out[k].Digest == d.Digest {
			if first := out[k]; first.Size != d.Size && named != d.Digest {
				named = d.Digest
				rep.add(Problem{Digest: d.Digest, Images: rep.usersOf(d.Digest), Err: fmt.Errorf("referenced with sizes %d and %d", first.Size, d.Size)})
			}
			continue
		}
		out = append(out, d)
	}
	rep.descs = slices.Clone(out) // at its size: the report keeps it
}

// shareDigests has the graph keep ferry.json's copy of each digest, not one
// more decoded from every manifest that references it.
func (rep *Report) shareDigests() {
	m := rep.Manifest
	if m == nil {
		return
	}
	rep.Graph.ShareDigests(func(d digest.Digest) digest.Digest {
		if b, ok := m.Blob(d); ok {
			return b.Digest
		}
		return d
	})
}

// usersOf lists the images whose graphs hold d. The first call indexes
// every image's graph in one pass, so that a bundle with a problem in each
// of thousands of blobs stays linear. It is safe for concurrent use (Fault).
func (rep *Report) usersOf(d digest.Digest) []string {
	rep.usersOnce.Do(func() {
		rep.users = map[digest.Digest][]string{}
		for _, img := range rep.Images {
			for _, g := range img.Graph {
				// A graph lists each digest once: the last name is the
				// only one to compare with.
				if u := rep.users[g.Digest]; len(u) == 0 || u[len(u)-1] != img.Name {
					rep.users[g.Digest] = append(u, img.Name)
				}
			}
		}
	})
	return slices.Clone(rep.users[d])
}

// Hash reads every blob of descs through its verifier, in parallel, and
// adds a Problem for each that fails.
func (rep *Report) Hash(ctx context.Context, src Source, descs []*ocispec.Descriptor, opts Options) error {
	prog := opts.progress()
	var total int64
	for _, d := range descs {
		total += d.Size
	}
	prog.Start("verify", total)
	defer prog.Done()
	var mu sync.Mutex
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(layout.JobsOrDefault(opts.Jobs))
	for _, d := range descs {
		eg.Go(func() error {
			err := hashOne(ectx, src, *d, prog)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.blobProblem(d.Digest, err)
				return nil
			}
			rep.Blobs++
			rep.Bytes += d.Size
			return nil
		})
	}
	return eg.Wait()
}

func hashOne(ctx context.Context, src Source, d ocispec.Descriptor, prog Progress) error {
	rc, err := src.Fetch(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = layout.Copy(progressWriter{prog}, rc, d.Size)
	return err
}

// progressWriter counts what is written to it, and keeps none of it.
type progressWriter struct{ p Progress }

func (w progressWriter) Write(b []byte) (int, error) {
	w.p.Add(int64(len(b)))
	return len(b), nil
}

// checkManifest holds ferry.json against index.json (as the walk read it
// into Images) and the graphs.
func (rep *Report) checkManifest() {
	descs := rep.descs
	m := rep.Manifest
	if m == nil {
		return
	}
	inFerry := make(map[digest.Digest]bool, len(m.Referrers))
	for _, r := range m.Referrers {
		inFerry[r.Descriptor.Digest] = true
	}
	inIndex := map[string]digest.Digest{}
	referrers := map[digest.Digest]bool{}
	for _, img := range rep.Images {
		d := img.Root.Digest
		if img.Subject != "" {
			referrers[d] = true
			if !inFerry[d] {
				rep.add(Problem{Digest: d, File: layout.FileIndex, Err: errors.New("index.json lists this referrer but ferry.json does not")})
			}
			continue
		}
		inIndex[img.Name] = d
	}
	for _, r := range m.Referrers {
		if !referrers[r.Descriptor.Digest] {
			rep.add(Problem{Digest: r.Descriptor.Digest, File: layout.FileBundle, Err: fmt.Errorf("ferry.json lists this referrer (of %s) but index.json does not", r.Subject)})
		}
	}
	listed := map[string]bool{}
	for _, img := range m.Images {
		listed[img.Reference] = true
		got, ok := inIndex[img.Reference]
		switch {
		case !ok:
			rep.add(Problem{File: layout.FileBundle, Images: []string{img.Reference}, Err: errors.New("ferry.json lists this image but index.json does not")})
		case got != img.Digest:
			rep.add(Problem{File: layout.FileBundle, Images: []string{img.Reference}, Err: fmt.Errorf("ferry.json says %s, index.json says %s", img.Digest, got)})
		}
	}
	for name := range inIndex {
		if !listed[name] {
			rep.add(Problem{File: layout.FileIndex, Images: []string{name}, Err: errors.New("index.json lists this image but ferry.json does not")})
		}
	}
	for _, d := range descs {
		b, ok := m.Blob(d.Digest)
		switch {
		case !ok:
			rep.add(Problem{Digest: d.Digest, File: layout.FileBundle, Images: rep.usersOf(d.Digest), Err: errors.New("a manifest references this blob but ferry.json does not list it")})
		case b.Size != d.Size:
			rep.add(Problem{Digest: d.Digest, File: layout.FileBundle, Images: rep.usersOf(d.Digest), Err: fmt.Errorf("ferry.json says %d bytes, the manifest says %d", b.Size, d.Size)})
		case !b.Included && layout.IsManifest(d.MediaType):
			rep.add(Problem{Digest: d.Digest, File: layout.FileBundle, Images: rep.usersOf(d.Digest), Err: errors.New("ferry.json marks a manifest as omitted; manifests always travel")})
		case b.MediaType != "" && b.MediaType != d.MediaType:
			rep.add(Problem{Digest: d.Digest, File: layout.FileBundle, Images: rep.usersOf(d.Digest), Err: fmt.Errorf("ferry.json says media type %q, the manifest says %q", b.MediaType, d.MediaType)})
		}
	}
	for _, b := range m.Blobs {
		if !rep.uses(b.Digest) {
			rep.add(Problem{Digest: b.Digest, File: layout.FileBundle, Err: errors.New("ferry.json lists this blob but no image uses it")})
		}
	}
}

// uses reports whether an image's graph references d.
func (rep *Report) uses(d digest.Digest) bool {
	_, ok := slices.BinarySearchFunc(rep.descs, d, func(e *ocispec.Descriptor, d digest.Digest) int { return cmp.Compare(e.Digest, d) })
	return ok
}

func (rep *Report) add(p Problem) {
	sort.Strings(p.Images)
	rep.Problems = append(rep.Problems, p)
}

// blobProblem records a problem with blob d's file, naming the images that
// use it.
func (rep *Report) blobProblem(d digest.Digest, err error) {
	rep.add(rep.blobProblemOf(d, err))
}

// blobProblemOf is the problem with blob d's file, naming the images that
// use it.
func (rep *Report) blobProblemOf(d digest.Digest, err error) Problem {
	images := rep.usersOf(d)
	sort.Strings(images)
	return Problem{Digest: d, File: layout.BlobName(d), Images: images, Err: err}
}

// checkName refuses an image name that no registry would take: a full
// reference that does not parse, or a bare tag outside the tag grammar. (A
// name that is the entry's digest means "no name".)
func checkName(name string, root ocispec.Descriptor) error {
	if name == root.Digest.String() {
		return nil
	}
	if strings.Contains(name, "/") {
		if _, err := reference.ParseNormalizedNamed(name); err != nil {
			return fmt.Errorf("invalid reference name %q: %v", name, err)
		}
		return nil
	}
	if !tagName.MatchString(name) {
		return fmt.Errorf("invalid tag name %q: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'", name)
	}
	return nil
}

var tagName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// RefName is the name an index.json entry gives its image: the full
// reference. ferry writes it in both org.opencontainers.image.ref.name and
// io.containerd.image.name; containerd and nerdctl put the full name in the
// second and only the tag in the first, so a ref.name without a '/' gives
// way to the containerd name. An entry with neither is named by its digest.
func RefName(d ocispec.Descriptor) string {
	ref, ctr := d.Annotations[ocispec.AnnotationRefName], d.Annotations["io.containerd.image.name"]
	switch {
	case ctr != "" && !strings.Contains(ref, "/"):
		return ctr
	case ref != "":
		return ref
	}
	return d.Digest.String()
}
