package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/debug"
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

// ferry collects at GOGC=50 unless GOGC is set, which is left to decide.
func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	tuneGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, gcPercent)
	}
	tuneGC(func(k string) string { return map[string]string{"GOGC": "200"}[k] })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=200 in the environment: ferry changed the GC percent to %d", got)
	}
}
