package layout

// File names at the root of a bundle.
const (
	FileOCILayout = "oci-layout"
	FileIndex     = "index.json"
	FileBundle    = "ferry.json"
	// FileSignature is the signature over ferry.json's bytes (base64, as
	// cosign sign-blob writes it).
	FileSignature = "ferry.json.sig"
)

// MaxSignatureSize caps ferry.json.sig: a base64 signature is ~100 bytes.
const MaxSignatureSize = 64 << 10

// AnnotationReferrerSubject is set on each referrer's index.json entry: the
// digest of the manifest it refers to, so that a reader of the layout can
// tell a referrer from an image (which carries a ref.name instead).
const AnnotationReferrerSubject = "io.ferry.referrer.subject"
