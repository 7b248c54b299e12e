//go:build linux

package main

import (
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ferry-oci/ferry/testdata/regtest"
)

// unread is how many bytes wait in a pipe, unread (FIONREAD).
func unread(t *testing.T, f *os.File) int {
	t.Helper()
	var n int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); errno != 0 {
		t.Fatal(errno)
	}
	return int(n)
}

// Ctrl-C stops verify - and import - that wait on a stalled pipe: the
// head of a bundle arrives, then nothing more, and the pipe stays open
// (they waited forever, deaf to the signal). Each exits 130.
func TestInterruptOnAStalledPipe(t *testing.T) {
	t.Parallel()
	bin := ferryBinary(t)
	_, dir := exportedBundle(t, bin)
	data := mustRead(t, tarOf(t, dir, nil))
	dst := regtest.New(t, regtest.Distribution)
	for _, args := range [][]string{{"verify", "-"}, {"import", "-", "--to", dst.Host + "/m", "--dest-plain-http"}} {
		cmd := exec.Command(bin, args...)
		pr, stdin, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = pr
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// All but the end of the last blob, then silence.
		wrote := make(chan struct{})
		go func() { stdin.Write(data[:len(data)-4096]); close(wrote) }()
		// Wait for the event: progress says the blobs are being read.
		buf := make([]byte, 64<<10)
		var seen strings.Builder
		for !strings.Contains(seen.String(), args[0]+": ") {
			n, err := stderr.Read(buf)
			if err != nil {
				t.Fatalf("%s: stderr ended before progress: %v\n%s", args[0], err, seen.String())
			}
			seen.Write(buf[:n])
		}
		// And for the pipe to be empty: ferry has read all there is and
		// waits for more.
		<-wrote
		for unread(t, pr) > 0 {
			runtime.Gosched()
		}
		cmd.Process.Signal(syscall.SIGINT)
		go io.Copy(io.Discard, stderr)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%s on a stalled pipe: still running 30 s after Ctrl-C", args[0])
		}
		stdin.Close()
		pr.Close()
		if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
			t.Errorf("%s on a stalled pipe: exit %d, want %d", args[0], code, exitInterrupted)
		}
	}
}
