package layout

// File names at the root of a bundle.
const (
	FileOCILayout = "oci-layout"
	FileIndex     = "index.json"
	FileBundle    = "ferry.json"
)

// AnnotationReferrerSubject is set on each referrer's index.json entry: the
// digest of the manifest it refers to, so that a reader of the layout can
// tell a referrer from an image (which carries a ref.name instead).
const AnnotationReferrerSubject = "io.ferry.referrer.subject"
