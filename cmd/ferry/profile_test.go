package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FERRY_MEMPROFILE naming a directory gets one heap profile per run there:
// pprof's gzipped protobuf.
func TestMemProfileIntoDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FERRY_MEMPROFILE", dir)
	stop := startMemProfile()
	keep := make([][]byte, 0, 64)
	for i := 0; i < 64; i++ {
		keep = append(keep, make([]byte, 64<<10))
	}
	stop()
	_ = keep
	files, _ := filepath.Glob(filepath.Join(dir, "ferry-*.pprof"))
	if len(files) != 1 {
		t.Fatalf("profiles written: %v", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil || !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		t.Fatalf("%s is not a gzipped profile (%v, %d bytes)", files[0], err, len(data))
	}
}
