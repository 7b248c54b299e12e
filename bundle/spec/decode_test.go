package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"
)

// wholeParse is how ferry.json was parsed before it was read as a stream:
// json.Unmarshal of the whole text. It is the oracle of FuzzParseStream.
func wholeParse(data []byte, name string) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%s: %w", name, ErrTooLarge)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%s: %w: not valid UTF-8", name, ErrInvalid)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	var raw struct {
		Blobs []struct{ Digest, Size, Included keySeen } `json:"blobs"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	for i, b := range raw.Blobs {
		if !b.Digest || !b.Size || !b.Included {
			return nil, fmt.Errorf("%s: %w: blobs[%d] lacks a key", name, ErrInvalid, i)
		}
	}
	if err := m.check(name); err != nil {
		return nil, err
	}
	m.Sort()
	return &m, nil
}

// repeatsKnownKey reports whether a document's top level gives one of
// Manifest's keys twice (as json.Unmarshal matches keys), which the
// stream refuses and json.Unmarshal merged.
func repeatsKnownKey(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if f, ok := fieldOf(tok.(string)); ok {
			if seen[f] {
				return true
			}
			seen[f] = true
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return false
		}
	}
	return false
}

// The stream reads what the whole-text parse read, to the same manifest,
// and refuses what it refused, for the same kind of reason; it refuses
// besides a known key given twice. Read a byte at a time, it is the same.
func FuzzParseStream(f *testing.F) {
	d, e := digest.FromString("x").String(), digest.FromString("y").String()
	valid := `{"mediaType":"` + MediaType + `","created":"2026-12-01T00:00:00Z","creator":"ferry","images":[{"reference":"a/b:c","digest":"` + d + `","platforms":["linux/amd64"]}],` +
		`"referrers":[{"repository":"a/b","subject":"` + d + `","descriptor":{"mediaType":"m","digest":"` + e + `","size":2,"annotations":{"k":"v"}},"tag":"t"}],` +
		`"blobs":[{"digest":"` + d + `","size":3,"mediaType":"m","repositories":["a/b","a/c"],"included":false},{"digest":"` + e + `","size":2,"included":true,"foreign":true}],"baselines":["` + d + `"],"future":{"x":[1]}}`
	for _, seed := range []string{
		valid, "null", "[]", `{}`, `{"mediaType":"` + MediaType + `"}`,
		strings.Replace(valid, `"creator"`, `"Creator"`, 1),
		strings.Replace(valid, `"baselines"`, `"blobs":null,"Blobs"`, 1),
		strings.Replace(valid, `"included":false`, `"included":false,"digest":"`+e+`"`, 1),
		strings.Replace(valid, `"ferry"`, `"fé\u00e9rry ✓"`, 1),
		strings.Replace(valid, `"ferry"`, "\"f\xc3rry\"", 1),
		strings.Replace(valid, `"size":3,`, "", 1),
		valid + " x", valid + "\n\t ",
		`{"mediaType":"` + MediaType + `","images":{}}`,
		`{"mediaType":"` + MediaType + `","blobs":[null]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		want, wantErr := wholeParse([]byte(in), "ferry.json")
		for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
			got, err := Parse(r, "ferry.json")
			if repeatsKnownKey([]byte(in)) {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("a key given twice: %v", err)
				}
				continue
			}
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("stream: %v; whole text: %v", err, wantErr)
			}
			for _, kind := range []error{ErrInvalid, ErrUnsupported, ErrTooLarge, ErrInvalidDigest} {
				if errors.Is(err, kind) != errors.Is(wantErr, kind) {
					t.Fatalf("stream: %v; whole text: %v", err, wantErr)
				}
			}
			if err == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("stream read\n%+v\nwhole text\n%+v", got, want)
			}
		}
	})
}

// Parse reads its reader to the end, so ParseSum's sum is the
// document's; and it refuses, naming the file, a document that is too
// large, not UTF-8 (across a split in its reads), or has a key twice.
func TestParseStream(t *testing.T) {
	t.Parallel()
	d := digest.FromString("x").String()
	valid := `{"mediaType":"` + MediaType + `","creator":"fé✓","blobs":[{"digest":"` + d + `","size":1,"included":true}]}` + "\n\n"
	m, sum, err := ParseSum(iotest.OneByteReader(strings.NewReader(valid)), "ferry.json")
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256([]byte(valid)); sum != want || m.Creator != "fé✓" {
		t.Fatalf("sum %x of a document whose sum is %x; creator %q", sum, want, m.Creator)
	}
	tests := map[string]struct {
		in   io.Reader
		want error
	}{
		"too large, as a stream":        {io.MultiReader(strings.NewReader(`{"pad":"`), &repeatReader{b: 'x', n: MaxSize}), ErrTooLarge},
		"invalid UTF-8 at a split":      {iotest.OneByteReader(strings.NewReader(strings.Replace(valid, "✓", "\xe2\x9c", 1))), ErrInvalid},
		"truncated sequence at the end": {strings.NewReader(valid + "\xe2\x9c"), ErrInvalid},
		"a key twice":                   {strings.NewReader(strings.Replace(valid, `"creator"`, `"mediaType":"x","MediaType"`, 1)), ErrInvalid},
		"a second document":             {strings.NewReader(valid + "{}"), ErrInvalid},
		"a failing reader":              {iotest.ErrReader(errDiskGone), errDiskGone},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tt.in, "ferry.json")
			if err == nil || !strings.Contains(err.Error(), "ferry.json") {
				t.Fatalf("err %v, want one naming ferry.json", err)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("%v, want %v", err, tt.want)
			}
			if tt.want == errDiskGone && errors.Is(err, ErrInvalid) {
				t.Fatalf("a read error reported as an invalid document: %v", err)
			}
		})
	}
}

var errDiskGone = errors.New("disk gone")

// repeatReader gives n bytes b.
type repeatReader struct {
	b byte
	n int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n)
	for i := range k {
		p[i] = r.b
	}
	r.n -= k
	return k, nil
}
