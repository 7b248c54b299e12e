package layout

import (
	"errors"
	"fmt"
	"path/filepath"
)

// Sentinel errors of the checks an export makes before writing a byte.
var (
	// ErrNoSpace: the output's file system has less room than the bundle
	// needs.
	ErrNoSpace = errors.New("not enough free space")
	// ErrFileTooBig: a file of the bundle would be larger than the output's
	// file system allows (FAT32: 4 GiB - 1 byte).
	ErrFileTooBig = errors.New("file too large for the file system")
)

// FS is what an export needs to know of the file system it writes to.
type FS struct {
	// Free is the bytes an unprivileged writer may still use; -1 unknown.
	Free int64
	// MaxFile is the largest file it holds; -1 for no limit ferry knows.
	MaxFile int64
	// Kind names it when it limits files ("FAT", "exFAT"); empty otherwise.
	Kind string
}

// fsOf is where the file system of a path is asked (statfs); tests
// replace it.
var fsOf = statFS

// CheckRoom refuses, before anything is written, an output whose file
// system cannot hold need more bytes, or a file of largest bytes. path is
// the output (it need not exist yet: its directory is asked). split tells
// whether the output is a split set (a file too large then wants a smaller
// volume size, not --split-size fat32).
func CheckRoom(path string, need, largest int64, split bool) error {
	dir := filepath.Dir(filepath.Clean(path))
	if isDir(path) {
		dir = path
	}
	fs, err := fsOf(dir)
	if err != nil {
		return nil // a file system that cannot be asked is not refused
	}
	if fs.MaxFile >= 0 && largest > fs.MaxFile {
		what := "a single tarball"
		hint := "give --split-size fat32 to write volumes of 4 GiB - 1 byte"
		if split {
			what, hint = "a volume", "give a --split-size below "+fmt.Sprint(fs.MaxFile)
		}
		return fmt.Errorf("%w: %s of %d bytes does not fit on %s (%s holds files of at most %d bytes): %s", ErrFileTooBig, what, largest, dir, fs.Kind, fs.MaxFile, hint)
	}
	if fs.Free >= 0 && need > fs.Free {
		return fmt.Errorf("%w on %s: the bundle needs %d more bytes, %d are free: free some space, or export to a larger disk", ErrNoSpace, dir, need, fs.Free)
	}
	return nil
}
