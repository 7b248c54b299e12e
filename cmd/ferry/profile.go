package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"time"

	"github.com/ferry-oci/ferry/layout"
)

// gcPercent is ferry's GOGC. Its heap is small next to the data it moves,
// and most of it lives for the whole run (the bundle's graph and plan):
// collecting when the heap has grown by a third rather than doubled keeps
// the peak near 1.35x what is live. In the bench's scale mode (3,006
// images) GOGC=50 took peak RSS from 56-74 MiB to 49-62 MiB for 8-26% more
// CPU; large blobs allocate little and do not notice. At 30,000 images
// (export to a directory, 75 MB live at its peak), 35 with the memory
// limit kept at the heap's goal (armLimit) took peak RSS from 136 MiB (50,
// the limit kept) and 148 MiB (50, no limit) to 121 MiB, for 182
// collections rather than 133 and no more CPU than the noise between
// runs (45.9 s user against 46.7 and 51.2).
const gcPercent = 35

// tuneGC sets gcPercent unless GOGC is set in the environment, which then
// decides as usual. It reports whether ferry should keep the memory limit
// at the heap's goal (armLimit): not when GOGC or GOMEMLIMIT is set.
func tuneGC(getenv func(string) string) (limit bool) {
	if getenv("GOGC") != "" {
		return false
	}
	debug.SetGCPercent(gcPercent)
	return getenv("GOMEMLIMIT") == ""
}

// limitHeadroom is what the memory limit allows beyond the heap's goal and
// the runtime's own memory (stacks, metadata): a heap a little fragmented.
const limitHeadroom = 4 << 20

// armLimit sets the soft memory limit after every collection to what the
// GC paces for: the heap live after it, grown by gcPercent, plus the
// runtime's memory outside the heap and limitHeadroom. The pacing stays
// GOGC's; what changes is that the pages a shrinking heap frees go back to
// the system at once rather than stay in the resident set. tuned is told
// each limit set, and the limit follows the next collection while it
// returns true.
func armLimit(tuned func(limit int64) bool) {
	// The sentinel holds a pointer: never a tiny allocation, whose
	// finalizer may not run (runtime.SetFinalizer), ending the chain.
	sentinel := &gcSentinel{}
	runtime.SetFinalizer(sentinel, func(*gcSentinel) {
		limit := limitAfterGC()
		debug.SetMemoryLimit(limit)
		if tuned(limit) {
			armLimit(tuned)
		}
	})
}

// gcSentinel is what armLimit's finalizer hangs on, collected once per
// cycle.
type gcSentinel struct{ _ *byte }

// limitAfterGC is the memory limit for the heap the last collection left.
func limitAfterGC() int64 {
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(samples)
	v := func(i int) int64 {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(samples[i].Value.Uint64())
	}
	live := v(0)
	outsideHeap := v(1) - v(2) - v(3) - v(4) - v(5)
	return live + live*gcPercent/100 + max(outsideHeap, 0) + limitHeadroom
}

// FERRY_MEMPROFILE=FILE writes a pprof heap profile taken when the heap in
// use was largest (sampled every 200 ms, after a GC), for tuning memory with
// the benchmark's scale mode; a directory gets one file per run, named by
// process id. The returned func takes the last sample and writes the file.
func startMemProfile() func() {
	path := os.Getenv("FERRY_MEMPROFILE")
	if path == "" {
		return func() {}
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, fmt.Sprintf("ferry-%d.pprof", os.Getpid()))
	}
	var peak uint64
	var best []byte
	sample := func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc <= peak {
			return
		}
		peak = ms.HeapAlloc
		var buf bytes.Buffer
		if pprof.Lookup("heap").WriteTo(&buf, 0) == nil {
			best = buf.Bytes()
		}
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() {
		close(stop)
		<-stopped
		sample()
		layout.WriteFileBytes(path, 0o644, best)
	}
}
