package layout

import (
	_ "crypto/sha256" // registers the algorithms ValidateDigest accepts
	_ "crypto/sha512"
	"fmt"
	"hash"
	"io"

	"github.com/opencontainers/go-digest"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle/spec"
)

// ValidateDescriptor checks what must hold before a path or a verifier is
// built from a descriptor: a well-formed sha256 or sha512 digest and a
// non-negative size.
func ValidateDescriptor(desc ocispec.Descriptor) error {
	if err := ValidateDigest(desc.Digest); err != nil {
		return err
	}
	if desc.Size < 0 {
		return fmt.Errorf("%s: negative size %d: %w", desc.Digest, desc.Size, ErrSizeMismatch)
	}
	return nil
}

// ValidateDigest accepts only digests that are safe to use as file names and
// whose algorithm ferry can verify (spec.ValidateDigest).
func ValidateDigest(d digest.Digest) error { return spec.ValidateDigest(d) }

// NewVerifyReader returns a reader that yields the content of r described by
// desc and fails instead of returning io.EOF when that content does not match:
// ErrSizeMismatch when r ends early or has bytes past desc.Size,
// ErrDigestMismatch when the bytes hash to another digest. It never reads
// more than desc.Size+1 bytes from r.
//
// The read that would complete the blob is checked before it returns: a
// blob that does not match never yields its last bytes, so a consumer that
// commits when it has every byte (an upload sized to desc.Size, a rename
// after the copy) never commits a blob that does not verify.
//
// This is the one way ferry reads a blob; nothing trusts bytes it has not
// passed through a verifier.
func NewVerifyReader(r io.Reader, desc ocispec.Descriptor) (io.Reader, error) {
	if err := ValidateDescriptor(desc); err != nil {
		return nil, err
	}
	return &verifyReader{r: r, desc: desc, h: desc.Digest.Algorithm().Hash(), remaining: desc.Size}, nil
}

type verifyReader struct {
	r         io.Reader
	desc      ocispec.Descriptor
	h         hash.Hash
	remaining int64
	err       error // sticky result once the end is reached
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.remaining == 0 {
		v.err = v.finish()
		return 0, v.err
	}
	if int64(len(p)) > v.remaining {
		p = p[:v.remaining]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.remaining -= int64(n)
	switch {
	case v.remaining == 0:
		// Withhold the last bytes until the whole blob checks out.
		if v.err = v.finish(); v.err != io.EOF {
			return 0, v.err
		}
		return n, nil
	case err == io.EOF:
		v.err = fmt.Errorf("blob %s: %w: got %d of %d bytes", v.desc.Digest, ErrSizeMismatch, v.desc.Size-v.remaining, v.desc.Size)
		return n, v.err
	case err != nil:
		return n, err
	}
	return n, nil
}

// finish runs once all expected bytes are read: it insists on EOF next and on
// the digest matching.
func (v *verifyReader) finish() error {
	var one [1]byte
	for tries := 0; ; tries++ {
		n, err := v.r.Read(one[:])
		if n > 0 {
			return fmt.Errorf("blob %s: %w: more than the expected %d bytes", v.desc.Digest, ErrSizeMismatch, v.desc.Size)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if tries == 100 {
			return io.ErrNoProgress
		}
	}
	if got := digest.NewDigest(v.desc.Digest.Algorithm(), v.h); got != v.desc.Digest {
		return fmt.Errorf("blob %s: %w: content hashes to %s", v.desc.Digest, ErrDigestMismatch, got)
	}
	return io.EOF
}
