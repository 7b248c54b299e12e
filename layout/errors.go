package layout

import (
	"errors"

	"github.com/ferry-oci/ferry/bundle/spec"
)

// Sentinel errors. They are wrapped with the digest, file or reference they
// concern; callers test for them with errors.Is.
var (
	// ErrDigestMismatch: content hashed to a different digest than its descriptor says.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrSizeMismatch: content was shorter or longer than its descriptor says.
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrInvalidDigest: a digest that is malformed or uses an unsupported
	// algorithm (the same error as spec's).
	ErrInvalidDigest = spec.ErrInvalidDigest
	// ErrBlobNotFound: a blob the bundle should hold is not there.
	ErrBlobNotFound = errors.New("blob not found in bundle")
	// ErrInvalidLayout: the bundle is not a valid OCI image layout.
	ErrInvalidLayout = errors.New("invalid OCI image layout")
	// ErrTooLarge: a JSON document is larger than ferry is willing to read
	// (the same error as spec's).
	ErrTooLarge = spec.ErrTooLarge
	// ErrUnsupported: a media type or format version ferry does not know
	// (the same error as spec's).
	ErrUnsupported = spec.ErrUnsupported
	// ErrIncomplete: a bundle whose export did not finish.
	ErrIncomplete = errors.New("incomplete bundle")
	// ErrInvalidManifest: a manifest or index that does not parse or does not
	// agree with its descriptor.
	ErrInvalidManifest = errors.New("invalid manifest")
)
