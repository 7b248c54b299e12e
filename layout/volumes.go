package layout

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ferry-oci/ferry/bundle/spec"
)

// FAT32MaxFile is the largest file a FAT32 file system holds: 4 GiB - 1.
const FAT32MaxFile = 4<<30 - 1

// SumsSuffix names the checksum file of a split set: bundle.tar.sha256sums,
// in the format of sha256sum, so `sha256sum -c` checks it too.
const SumsSuffix = ".sha256sums"

// ErrVolume: a volume of a split set is missing or corrupt.
var ErrVolume = errors.New("split volume")

// VolumeName is the name of volume i of a split set: bundle.tar.000.
func VolumeName(base string, i int) string {
	return fmt.Sprintf("%s.%03d", base, i)
}

var volumeSuffix = regexp.MustCompile(`\.(\d{3})$`)

// SplitBase returns the base name of a split set given any of its volumes
// (bundle.tar.000 → bundle.tar), or "" if path is not a volume name.
func SplitBase(path string) string {
	if m := volumeSuffix.FindStringSubmatch(path); m != nil {
		return strings.TrimSuffix(path, m[0])
	}
	return ""
}

// ParseSize reads a split size: a byte count with an optional K, M, G or T
// suffix (powers of 1024, an optional trailing B or iB), or "fat32".
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "FAT32" {
		return FAT32MaxFile, nil
	}
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a positive number with an optional K, M, G or T suffix, or fat32", s)
	}
	return n * mult, nil
}

// SplitWriter writes one stream as volumes of at most size bytes each. Each
// volume is a temp file until Commit renames them all into place and writes
// the sums file last; Abort (or a failed Commit) removes them.
type SplitWriter struct {
	base  string
	size  int64
	vols  []*volume
	cur   *volume
	err   error
	avail int64
}

type volume struct {
	f *AtomicFile
	h hash.Hash
	n int64
}

// NewSplitWriter prepares volumes base.000, base.001, … of at most size bytes.
func NewSplitWriter(base string, size int64) (*SplitWriter, error) {
	if size <= 0 {
		return nil, fmt.Errorf("split size must be positive, got %d", size)
	}
	return &SplitWriter{base: base, size: size}, nil
}

func (s *SplitWriter) next() error {
	if s.cur != nil {
		if err := s.cur.f.Finish(); err != nil {
			return err
		}
	}
	final := VolumeName(s.base, len(s.vols))
	f, err := CreateAtomic(final, 0o444, true)
	if err != nil {
		return fmt.Errorf("creating volume %s: %w", final, err)
	}
	s.cur = &volume{f: f, h: sha256.New()}
	s.vols = append(s.vols, s.cur)
	s.avail = s.size
	return nil
}

func (s *SplitWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	written := 0
	for len(p) > 0 {
		if s.cur == nil || s.avail == 0 {
			if s.err = s.next(); s.err != nil {
				return written, s.err
			}
		}
		chunk := p
		if int64(len(chunk)) > s.avail {
			chunk = chunk[:s.avail]
		}
		n, err := s.cur.f.Write(chunk)
		s.cur.h.Write(chunk[:n])
		s.cur.n += int64(n)
		s.avail -= int64(n)
		written += n
		p = p[n:]
		if err != nil {
			s.err = fmt.Errorf("writing volume %s: %w", s.cur.f.Final(), err)
			return written, s.err
		}
	}
	return written, nil
}

// Commit syncs and renames every volume into place, then writes the sums
// file. An empty stream still makes one (empty) volume.
func (s *SplitWriter) Commit() error {
	if s.err != nil {
		s.Abort()
		return s.err
	}
	if len(s.vols) == 0 {
		if err := s.next(); err != nil {
			return err
		}
	}
	var sums strings.Builder
	for _, v := range s.vols {
		if err := v.f.Finish(); err != nil {
			s.Abort()
			return err
		}
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(v.h.Sum(nil)), filepath.Base(v.f.Final()))
	}
	// Stale volumes of an earlier, longer set must not look like ours.
	for i := len(s.vols); ; i++ {
		if err := os.Remove(VolumeName(s.base, i)); err != nil {
			break
		}
	}
	for _, v := range s.vols {
		if err := v.f.Commit(); err != nil {
			s.Abort()
			return err
		}
	}
	return WriteFileBytes(s.base+SumsSuffix, 0o644, []byte(sums.String()))
}

// Abort removes every temp volume.
func (s *SplitWriter) Abort() {
	for _, v := range s.vols {
		v.f.Abort()
	}
}

// RemoveStaleTemps removes the temp files an interrupted write of path
// left in its directory: of the file itself, or of its split volumes
// (path.000, …). They are ferry's own (TempPrefix); nothing else is
// touched.
func RemoveStaleTemps(path string) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // nothing there yet
	}
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, TempPrefix+base)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if strings.HasPrefix(rest, "-") || volumeTemp.MatchString(rest) || strings.HasPrefix(rest, SumsSuffix+"-") {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

var volumeTemp = regexp.MustCompile(`^\.\d{3}-`)

// readSums reads the sums file of a split set.
func readSums(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		base := strings.TrimSuffix(path, SumsSuffix)
		return nil, fmt.Errorf("%w: no checksum file %s: ferry reads a split set with it, to check every volume; to import without it, join the volumes (cat %s.0* > %s) and import %s: every blob is still verified", ErrVolume, path, base, base, base)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: checksum file: %v", ErrVolume, err)
	}
	defer f.Close()
	return parseSums(f, path)
}

// maxSumsFile caps a sums file: a line is about 80 bytes, so this is over
// ten thousand volumes.
const maxSumsFile = 1 << 20

// parseSums parses "<sha256 hex>  <file name>" lines (sha256sum's format,
// '*' before the name allowed). name is used in errors. It refuses a file
// over maxSumsFile, malformed lines, names with a path and names listed
// twice.
func parseSums(r io.Reader, name string) (map[string]string, error) {
	data, err := spec.ReadCapped(r, maxSumsFile, name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrVolume, err)
	}
	sums := map[string]string{}
	for i, text := range strings.Split(string(data), "\n") {
		line := i + 1
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		sum, file, ok := strings.Cut(text, "  ")
		file = strings.TrimPrefix(file, "*")
		if !ok || len(sum) != 64 || strings.ContainsAny(file, "/\\\x00") || file == "" || file == "." || file == ".." {
			return nil, fmt.Errorf("%w: %s:%d: not a sha256sum line", ErrVolume, name, line)
		}
		if _, err := hex.DecodeString(sum); err != nil || strings.ToLower(sum) != sum {
			return nil, fmt.Errorf("%w: %s:%d: not a lower-case sha256", ErrVolume, name, line)
		}
		if _, dup := sums[file]; dup {
			return nil, fmt.Errorf("%w: %s:%d: %s is listed twice", ErrVolume, name, line, file)
		}
		sums[file] = sum
	}
	return sums, nil
}

// VolumeReader reads a split set as one stream, checking each volume's
// sha256 against the sums file when it reaches the volume's end.
type VolumeReader struct {
	base  string
	size  int64 // of every volume together, on the medium
	names []string
	sums  map[string]string
	i     int
	f     *os.File
	h     hash.Hash
}

// OpenVolumes opens the split set whose base name is base. Every volume the
// sums file lists must exist, numbered from 000 without gaps.
func OpenVolumes(base string) (*VolumeReader, error) {
	sums, err := readSums(base + SumsSuffix)
	if err != nil {
		return nil, err
	}
	if len(sums) == 0 {
		return nil, fmt.Errorf("%w: %s lists no volumes", ErrVolume, base+SumsSuffix)
	}
	var names []string
	for i := 0; i < len(sums); i++ {
		name := filepath.Base(VolumeName(base, i))
		if _, ok := sums[name]; !ok {
			return nil, fmt.Errorf("%w: %s does not list %s", ErrVolume, base+SumsSuffix, name)
		}
		names = append(names, VolumeName(base, i))
	}
	var missing []string
	var size, full int64
	sizes := make([]int64, len(names))
	for i, n := range names {
		fi, err := os.Stat(n)
		if err != nil {
			missing = append(missing, n)
			continue
		}
		sizes[i] = fi.Size()
		size += fi.Size()
		if i < len(names)-1 {
			full = max(full, fi.Size())
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%w: missing volume(s) %s of %d", ErrVolume, strings.Join(missing, ", "), len(names))
	}
	// Every volume but the last has exactly the split size: a shorter one
	// is the one cut short (a copy that stopped, a full stick).
	for i, n := range names[:len(names)-1] {
		if sizes[i] < full {
			return nil, fmt.Errorf("%w: %s is short: %d bytes, where every volume but the last has %d (a copy cut short?)", ErrVolume, n, sizes[i], full)
		}
	}
	return &VolumeReader{base: base, size: size, names: names, sums: sums}, nil
}

// Size is the bytes of the whole set on the medium: no entry of its
// tarball can be larger.
func (v *VolumeReader) Size() int64 { return v.size }

// Current is the volume being read.
func (v *VolumeReader) Current() string {
	if v.i < len(v.names) {
		return v.names[v.i]
	}
	return v.names[len(v.names)-1]
}

func (v *VolumeReader) Read(p []byte) (int, error) {
	for v.i < len(v.names) {
		if v.f == nil {
			f, err := os.Open(v.names[v.i])
			if err != nil {
				return 0, fmt.Errorf("%w: %v", ErrVolume, err)
			}
			v.f, v.h = f, sha256.New()
		}
		n, err := v.f.Read(p)
		v.h.Write(p[:n])
		if err == io.EOF {
			v.f.Close()
			v.f = nil
			name := v.names[v.i]
			if got := hex.EncodeToString(v.h.Sum(nil)); got != v.sums[filepath.Base(name)] {
				return n, fmt.Errorf("%w: %s is corrupt: its sha256 is %s, %s says %s", ErrVolume, name, got, filepath.Base(v.base+SumsSuffix), v.sums[filepath.Base(name)])
			}
			v.i++
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
	return 0, io.EOF
}

// Close closes the open volume.
func (v *VolumeReader) Close() error {
	if v.f != nil {
		return v.f.Close()
	}
	return nil
}

// Section opens n bytes of the set at offset off, as if the volumes were
// one file: for reading a blob again (TarReader.Reopen). The volume sums
// are not checked here; what is read is verified by its digest.
func (v *VolumeReader) Section(off, n int64) (io.ReadCloser, error) {
	var (
		readers []io.Reader
		files   multiCloser
		start   int64 // offset of the current volume in the set
	)
	for _, name := range v.names {
		if n <= 0 {
			break
		}
		fi, err := os.Stat(name)
		if err != nil {
			files.Close()
			return nil, fmt.Errorf("%w: %v", ErrVolume, err)
		}
		end := start + fi.Size()
		if off < end {
			f, err := os.Open(name)
			if err != nil {
				files.Close()
				return nil, fmt.Errorf("%w: %v", ErrVolume, err)
			}
			files = append(files, f)
			take := min(n, end-off)
			readers = append(readers, io.NewSectionReader(f, off-start, take))
			off, n = off+take, n-take
		}
		start = end
	}
	if n > 0 {
		files.Close()
		return nil, fmt.Errorf("%w: the set ends %d bytes before the section does", ErrVolume, n)
	}
	return readCloser{io.MultiReader(readers...), files}, nil
}

// multiCloser closes every file it holds.
type multiCloser []*os.File

func (m multiCloser) Close() error {
	var errs []error
	for _, f := range m {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
