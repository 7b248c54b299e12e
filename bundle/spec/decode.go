package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// decode reads a Manifest from r a value at a time: the list fields
// (images, referrers, blobs) one entry at a time, each interned as it is
// read (strs), the rest whole. A ferry.json of 30,000 images is 35 MB of
// text; json.Unmarshal would need all of it in memory at once, beside
// what it parses into.
//
// Each entry is decoded by json.Unmarshal from its own text, so entries
// read exactly as they would within the whole document. Two differences
// from json.Unmarshal of the whole, both refusals: a known key given
// twice (json.Unmarshal would merge the two, which no writer means and a
// signed document should not allow), and, as before, invalid UTF-8
// anywhere, which json.Unmarshal would replace silently.
func decode(r io.Reader, name string) (*Manifest, error) {
	capped := &cappedUTF8{r: r, left: MaxSize}
	m, err := decodeFrom(json.NewDecoder(capped))
	switch {
	case err == nil:
		return m, nil
	case errors.Is(capped.err, errTooLarge):
		return nil, fmt.Errorf("%s: %w: more than %d bytes", name, ErrTooLarge, MaxSize)
	case errors.Is(capped.err, errNotUTF8):
		return nil, fmt.Errorf("%s: %w: not valid UTF-8", name, ErrInvalid)
	case capped.err != nil && capped.err != io.EOF:
		return nil, fmt.Errorf("reading %s: %w", name, capped.err)
	}
	return nil, fmt.Errorf("%s: %w: does not parse: %v", name, ErrInvalid, err)
}

func decodeFrom(dec *json.Decoder) (*Manifest, error) {
	m := &Manifest{}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil { // null: an empty manifest, refused by its mediaType
		return m, end(dec)
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("the document is %v, not an object", tok)
	}
	s := strs{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string) // an object's keys are strings
		field, known := fieldOf(key)
		if known && seen[field] {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		if known {
			seen[field] = true
		}
		if err := m.decodeField(dec, field, s); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	return m, end(dec)
}

// fields are Manifest's keys, as json.Unmarshal matches them: exactly,
// or else folded (strings.EqualFold is its folding).
var fields = []string{"mediaType", "created", "creator", "images", "referrers", "blobs", "baselines"}

func fieldOf(key string) (string, bool) {
	for _, f := range fields {
		if key == f {
			return f, true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(key, f) {
			return f, true
		}
	}
	return "", false
}

func (m *Manifest) decodeField(dec *json.Decoder, field string, s strs) error {
	var err error
	switch field {
	case "mediaType":
		return dec.Decode(&m.MediaType)
	case "created":
		return dec.Decode(&m.Created)
	case "creator":
		return dec.Decode(&m.Creator)
	case "baselines":
		return dec.Decode(&m.Baselines)
	case "images":
		m.Images, err = decodeList(dec, func(raw []byte, _ int, img *Image) error {
			err := json.Unmarshal(raw, img)
			s.image(img)
			return err
		})
	case "referrers":
		m.Referrers, err = decodeList(dec, func(raw []byte, _ int, r *Referrer) error {
			err := json.Unmarshal(raw, r)
			s.referrer(r)
			return err
		})
	case "blobs":
		m.Blobs, err = decodeList(dec, func(raw []byte, i int, b *Blob) error {
			if err := json.Unmarshal(raw, b); err != nil {
				return err
			}
			s.blob(b)
			return requireBlobKeys(raw, i)
		})
	default: // a field this ferry does not know
		var skip json.RawMessage
		return dec.Decode(&skip)
	}
	return err
}

// decodeList reads a JSON list (or null) an entry at a time, each from its
// own text; the text's buffer is reused.
func decodeList[T any](dec *json.Decoder, each func(raw []byte, i int, v *T) error) ([]T, error) {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return nil, fmt.Errorf("%v is not a list", tok)
	}
	list := []T{} // as json.Unmarshal makes of [], not nil
	var raw json.RawMessage
	for i := 0; dec.More(); i++ {
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		var v T
		if err := each(raw, i, &v); err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		list = append(list, v)
	}
	_, err = dec.Token() // the closing bracket
	return list, err
}

// end requires that nothing but white space follows the document, and
// reads to the end.
func end(dec *json.Decoder) error {
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return err
		}
		return fmt.Errorf("%v after the document", tok)
	}
	return nil
}

var (
	errTooLarge = errors.New("too large")
	errNotUTF8  = errors.New("not UTF-8")
)

// cappedUTF8 passes on at most left bytes of r, all of them UTF-8, and
// fails with errTooLarge past that, or errNotUTF8. A sequence split
// between two reads is held back until its end arrives. err keeps r's own
// error.
type cappedUTF8 struct {
	r    io.Reader
	left int64
	// tail is the start of a sequence split across reads.
	tail []byte
	err  error
}

func (c *cappedUTF8) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if len(p) <= len(c.tail) {
		return 0, io.ErrShortBuffer
	}
	n := copy(p, c.tail)
	m, err := c.r.Read(p[n:])
	if c.left -= int64(m); c.left < 0 {
		c.err = errTooLarge
		return 0, c.err
	}
	n += m
	c.tail = c.tail[:0]
	if err != nil {
		c.err = err
	} else if k := splitAt(p[:n]); k < n {
		c.tail = append(c.tail, p[k:n]...)
		n = k
	}
	if !utf8.Valid(p[:n]) {
		c.err = errNotUTF8
		return 0, c.err
	}
	return n, err
}

// splitAt is where the last, incomplete, sequence of b starts; len(b)
// when b ends with a whole one.
func splitAt(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return len(b)
			}
			return i
		}
	}
	return len(b)
}
