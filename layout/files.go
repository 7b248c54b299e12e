package layout

// File names at the root of a bundle.
const (
	FileOCILayout = "oci-layout"
	FileIndex     = "index.json"
	FileBundle    = "ferry.json"
)
