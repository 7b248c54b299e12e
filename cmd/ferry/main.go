// Command ferry carries container images across an air gap.
//
// See README.md for usage; DESIGN.md for the bundle format.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// FERRY_CPUPROFILE=FILE writes a pprof CPU profile of the run, for
	// tuning with the benchmark (make bench).
	if path := os.Getenv("FERRY_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer f.Close()
		}
	}
	if tuneGC(os.Getenv) {
		armLimit(func(int64) bool { return true })
	}
	writeMemProfile := startMemProfile()
	done := make(chan int, 1)
	go func() { done <- run(ctx, os.Args[1:], os.Stdout, os.Stderr) }()
	var code int
	select {
	case code = <-done:
	case <-ctx.Done():
		// Everything stops on its context; what cannot (a read from a
		// stalled pipe blocks in the kernel) gets a second, then ferry exits.
		select {
		case code = <-done:
		case <-time.After(interruptGrace):
			fmt.Fprintln(os.Stderr, "ferry: interrupted (a read that was waiting did not end within a second; exiting)")
			code = exitInterrupted
		}
	}
	pprof.StopCPUProfile()
	writeMemProfile()
	stop()
	os.Exit(code)
}

// interruptGrace is how long ferry waits, after Ctrl-C or SIGTERM, for the
// work under way to stop on its own before it exits anyway.
const interruptGrace = time.Second
