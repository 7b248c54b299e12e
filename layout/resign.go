package layout

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/pgzip"
)

// ReplaceSignature puts sig in a tarball bundle as ferry.json.sig, right
// after ferry.json, replacing the one there: the tarball is written anew
// in the same form (a .tar, a whole-bundle .tar.gz, or a split set of the
// same volume size, with its sums file) and renamed over the old one when
// complete. Every other entry is copied as it is.
func ReplaceSignature(path string, sig []byte) error {
	src, gzipped, err := openRaw(path)
	if err != nil {
		return err
	}
	defer src.Close()
	var out interface {
		io.Writer
		Commit() error
		Abort()
	}
	if base := SplitBase(path); base != "" {
		size, err := volumeSize(base)
		if err != nil {
			return err
		}
		if out, err = NewSplitWriter(base, size); err != nil {
			return err
		}
	} else if out, err = CreateAtomic(path, 0o444, true); err != nil {
		return err
	}
	if err := copyWithSignature(src, out, gzipped, sig); err != nil {
		out.Abort()
		return fmt.Errorf("re-signing %s: %w", path, err)
	}
	return out.Commit()
}

// openRaw opens a tarball's bytes, uncompressed, from a file or a split set.
func openRaw(path string) (io.ReadCloser, bool, error) {
	var r io.ReadCloser
	if base := SplitBase(path); base != "" {
		vr, err := OpenVolumes(base)
		if err != nil {
			return nil, false, err
		}
		r = vr
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, false, err
		}
		r = f
	}
	br := bufio.NewReaderSize(r, 256<<10)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := pgzip.NewReader(br)
		if err != nil {
			r.Close()
			return nil, false, err
		}
		return readCloser{zr, r}, true, nil
	}
	return readCloser{br, r}, false, nil
}

// volumeSize is the volume size of a split set: the first volume's, when
// there are more; a set of one volume keeps one volume up to FAT32's limit.
func volumeSize(base string) (int64, error) {
	first, err := os.Stat(VolumeName(base, 0))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrVolume, err)
	}
	if _, err := os.Stat(VolumeName(base, 1)); errors.Is(err, os.ErrNotExist) {
		return max(first.Size()+int64(64<<10), FAT32MaxFile), nil
	}
	return first.Size(), nil
}

func copyWithSignature(src io.Reader, dst io.Writer, gzipped bool, sig []byte) error {
	w := dst
	var gz *pgzip.Writer
	if gzipped {
		gz = pgzip.NewWriter(dst)
		w = gz
	}
	tr, tw := tar.NewReader(src), tar.NewWriter(w)
	signed := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if hdr.Name == FileSignature {
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := Copy(tw, tr, hdr.Size); err != nil {
			return err
		}
		if hdr.Name == FileBundle {
			sh := *hdr
			sh.Name, sh.Size = FileSignature, int64(len(sig))
			sh.PAXRecords, sh.Format = nil, tar.FormatUnknown
			if err := tw.WriteHeader(&sh); err != nil {
				return err
			}
			if _, err := tw.Write(sig); err != nil {
				return err
			}
			signed = true
		}
	}
	if !signed {
		return fmt.Errorf("%w: no %s entry to sign", ErrInvalidLayout, FileBundle)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if gz != nil {
		return gz.Close()
	}
	return nil
}
