package layout

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// WriteFileAtomic makes path appear with the bytes write produces, or not at
// all: it writes a temp file in the same directory, syncs it, closes it, sets
// perm and renames it into place. The temp file is removed on any failure.
func WriteFileAtomic(path string, perm os.FileMode, write func(w io.Writer) error) (err error) {
	return writeFileAtomic(path, perm, true, write)
}

func writeFileAtomic(path string, perm os.FileMode, sync bool, write func(w io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, ".ferry-tmp-"+base+"-*")
	if err != nil {
		return fmt.Errorf("creating temp file for %s: %w", path, err)
	}
	tmp := f.Name()
	succeeded := false
	defer func() {
		if !succeeded {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", path, err)
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return fmt.Errorf("setting mode of %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	succeeded = true
	if sync {
		syncDir(dir)
	}
	return nil
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

// copyBufPool holds the buffers blobs are copied through: large enough that
// a multi-GiB blob costs few system calls, few enough to keep memory flat.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// Copy copies src to dst through a pooled 1 MiB buffer.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	// Hide ReaderFrom/WriterTo so the buffer is used, not 32 KiB chunks.
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}
