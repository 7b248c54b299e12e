package layout

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// TempPrefix starts the name of every temp file ferry writes; a file whose
// name starts with it is ferry's own, unfinished, and may be removed.
const TempPrefix = ".ferry-tmp-"

// AtomicFile is a file that appears at its final path only when it is
// complete: it is written as a temp file (TempPrefix) in the same
// directory and renamed into place by Commit; Abort, or a failed Commit,
// removes it. This is the one way ferry writes a file.
//
// A durable file is fsynced in the background as it grows (SyncBehind),
// then once more before the rename, and the directory after it. A file
// that is not durable is neither: its writer syncs it later (a bundle's
// blobs are synced together before the metadata that declares them).
type AtomicFile struct {
	f       *os.File
	w       io.Writer
	behind  *SyncBehind // nil when not durable
	final   string
	perm    os.FileMode
	closed  bool
	settled bool // renamed, or removed
}

// CreateAtomic starts the file that Commit makes appear at path with perm.
func CreateAtomic(path string, perm os.FileMode, durable bool) (*AtomicFile, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, TempPrefix+base+"-*")
	if err != nil {
		return nil, fmt.Errorf("creating temp file for %s: %w", path, err)
	}
	a := &AtomicFile{f: f, w: f, final: path, perm: perm}
	if durable {
		a.behind = NewSyncBehind(f)
		a.w = a.behind
	}
	return a, nil
}

func (a *AtomicFile) Write(p []byte) (int, error) { return a.w.Write(p) }

// Final is the path the file appears at.
func (a *AtomicFile) Final() string { return a.final }

// Finish syncs (if durable), closes the temp file and sets its mode: all of
// Commit but the rename, for a set of files that must appear together.
func (a *AtomicFile) Finish() error {
	if a.closed {
		return nil
	}
	if a.behind != nil {
		if err := a.behind.Sync(); err != nil {
			a.Abort()
			return err
		}
	}
	a.closed = true
	if err := a.f.Close(); err != nil {
		a.Abort()
		return fmt.Errorf("closing %s: %w", a.final, err)
	}
	if err := os.Chmod(a.f.Name(), a.perm); err != nil {
		a.Abort()
		return fmt.Errorf("setting mode of %s: %w", a.final, err)
	}
	return nil
}

// Commit finishes the file and renames it into place.
func (a *AtomicFile) Commit() error {
	if err := a.Finish(); err != nil {
		return err
	}
	if err := os.Rename(a.f.Name(), a.final); err != nil {
		a.Abort()
		return fmt.Errorf("renaming into %s: %w", a.final, err)
	}
	a.settled = true
	if a.behind != nil {
		syncDir(filepath.Dir(a.final))
	}
	return nil
}

// Abort removes the temp file, after any background fsync of it has ended.
// It does nothing once the file is committed.
func (a *AtomicFile) Abort() {
	if a.settled {
		return
	}
	a.settled = true
	if a.behind != nil {
		a.behind.Wait()
	}
	if !a.closed {
		a.closed = true
		a.f.Close()
	}
	os.Remove(a.f.Name())
}

// WriteFileAtomic makes path appear, durably, with the bytes write
// produces, or not at all (AtomicFile).
func WriteFileAtomic(path string, perm os.FileMode, write func(w io.Writer) error) error {
	return writeAtomic(path, perm, true, write)
}

func writeAtomic(path string, perm os.FileMode, durable bool, write func(w io.Writer) error) error {
	a, err := CreateAtomic(path, perm, durable)
	if err != nil {
		return err
	}
	if err := write(a); err != nil {
		a.Abort()
		return err
	}
	return a.Commit()
}

// syncDir makes a rename durable. Errors are ignored: not every file system
// can sync a directory, and the rename itself has already succeeded.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// WriteFileBytes is WriteFileAtomic for content already in memory.
func WriteFileBytes(path string, perm os.FileMode, data []byte) error {
	return WriteFileAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// copyBufPool holds the buffers large blobs are copied through: large
// enough that a multi-GiB blob costs few system calls, few enough to keep
// memory flat. Small blobs (the configs, manifests and small layers of a
// mirror of thousands of images) go through smallCopyBufPool's: a 1 MiB
// buffer for each of a few KiB is megabytes held for nothing.
var (
	copyBufPool      = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}
	smallCopyBufPool = sync.Pool{New: func() any { b := make([]byte, smallCopy); return &b }}
)

// smallCopy is the buffer of a blob known to be smaller than a large one's.
const smallCopy = 32 << 10

// Copy copies src to dst through a pooled buffer: 1 MiB, or 32 KiB when
// size, the bytes src is expected to hold (-1: not known), is under 1 MiB.
func Copy(dst io.Writer, src io.Reader, size int64) (int64, error) {
	pool := &copyBufPool
	if size >= 0 && size < 1<<20 {
		pool = &smallCopyBufPool
	}
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	// Hide ReaderFrom/WriterTo so the buffer is used, not 32 KiB chunks.
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}
