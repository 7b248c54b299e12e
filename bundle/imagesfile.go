package bundle

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// maxImagesFileLine caps one line of an images file.
const maxImagesFileLine = 4096

// ReadImagesFile reads image references, one a line. Blank lines and
// everything from a '#' to the end of a line are ignored. Each reference is
// parsed, so a typo is reported with its line number before anything runs.
func ReadImagesFile(r io.Reader, name string) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1024), maxImagesFileLine)
	var refs []string
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if _, err := ParseReference(text); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		refs = append(refs, text)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w (lines are limited to %d bytes)", name, err, maxImagesFileLine)
	}
	return refs, nil
}
