package layout

import "os"

// Bundle is a bundle opened by Open, in one of two shapes: a *Dir, whose
// blobs are read at random, or a *TarReader, read once from front to back
// (a .tar or .tar.gz file, a split set, standard input). Open alone decides
// which form a path is, so a new form (a .tar.zst, say) changes Open and
// the reader it returns, not the commands that read bundles.
type Bundle interface {
	// Name is what was opened, for messages.
	Name() string
	Close() error
}

var (
	_ Bundle = (*Dir)(nil)
	_ Bundle = (*TarReader)(nil)
)

// Open opens the bundle at path: a directory, a .tar or .tar.gz file
// (compression is detected by magic bytes, not by name), any volume of a
// split set, or "-" for standard input.
func Open(path string) (Bundle, error) {
	if path != "-" {
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			return OpenDir(path)
		}
	}
	return OpenTar(path)
}
