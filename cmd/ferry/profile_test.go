package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
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

// ferry collects at GOGC=50 and keeps the memory limit at the heap's goal
// unless GOGC is set, which is left to decide, or GOMEMLIMIT is.
func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	if !tuneGC(env()) {
		t.Error("nothing set: the memory limit is not kept")
	}
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, gcPercent)
	}
	if tuneGC(env("GOGC", "200")) {
		t.Error("GOGC=200 in the environment: ferry would set the memory limit")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=200 in the environment: ferry changed the GC percent to %d", got)
	}
	if tuneGC(env("GOMEMLIMIT", "1GiB")) {
		t.Error("GOMEMLIMIT in the environment: ferry would set the memory limit")
	}
}

// After a collection the memory limit is what is live, grown by gcPercent,
// plus the runtime's memory outside the heap: above the live heap, below
// twice what the GC paces for, never the unlimited default.
func TestMemoryLimitFollowsTheHeap(t *testing.T) {
	prevLimit := debug.SetMemoryLimit(math.MaxInt64)
	prevPercent := debug.SetGCPercent(gcPercent)
	defer debug.SetGCPercent(prevPercent)
	defer debug.SetMemoryLimit(prevLimit)
	const live = 64 << 20
	keep := make([]byte, live)
	tuned := make(chan int64, 1)
	armLimit(func(limit int64) bool {
		tuned <- limit
		return false
	})
	runtime.GC()
	var limit int64
	select {
	case limit = <-tuned:
	case <-time.After(time.Minute):
		t.Fatal("no memory limit set within a minute of a collection")
	}
	runtime.KeepAlive(keep)
	goal := int64(live) * (100 + gcPercent) / 100
	if limit < goal || limit > 2*goal {
		t.Errorf("memory limit %d MiB with %d MiB live; want from %d MiB (the heap's goal) to twice that", limit>>20, live>>20, goal>>20)
	}
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Errorf("the limit in force is %d, want %d", got, limit)
	}
}
