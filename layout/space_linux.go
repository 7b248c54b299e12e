package layout

import (
	"os"
	"syscall"
)

// msdosMagic is statfs(2)'s f_type of FAT12, FAT16 and FAT32 (vfat),
// whose files are at most 4 GiB - 1 byte. (exFAT's are not limited so.)
const msdosMagic = 0x4d44

func statFS(dir string) (FS, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return FS{}, err
	}
	fs := FS{Free: int64(st.Bavail) * int64(st.Bsize), MaxFile: -1}
	if st.Type == msdosMagic {
		fs.MaxFile, fs.Kind = FAT32MaxFile, "FAT"
	}
	return fs, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
