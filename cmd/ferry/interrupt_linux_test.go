//go:build linux

package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ferry-oci/ferry/testdata/imagegen"
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

// A small file system of our own (tmpfs, as root, as CI runs): an export
// that cannot fit is refused before a byte is written, saying what it
// needs and what is free; and a disk that fills up during the export (the
// proxy fills it as the first blob is asked for) gives a real ENOSPC: exit
// 1, no temp file left, the bundle incomplete, no partial tarball.
func TestDiskFullDuringExport(t *testing.T) {
	t.Parallel()
	bin := ferryBinary(t)
	ctx := context.Background()
	src := regtest.New(t, regtest.Distribution)
	set, _ := imagegen.Generate(imagegen.Options{Apps: 3, LayerSize: 512 << 10})
	if err := set.Push(ctx, src.Host); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mounting a 16 MiB tmpfs (the test runs as root, as CI does): %v %s", err, b)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	var mu sync.Mutex
	filled := true // not before the first check
	proxy := regtest.NewProxy(t, src, func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && !filled {
			filled = true
			var st syscall.Statfs_t
			syscall.Statfs(mnt, &st)
			os.WriteFile(filepath.Join(mnt, "filler"), make([]byte, int64(st.Bavail)*int64(st.Bsize)-(64<<10)), 0o644)
		}
		return false
	})
	refill := func() {
		mu.Lock()
		filled = false
		mu.Unlock()
	}
	var refs []string
	for _, img := range set.Images {
		refs = append(refs, img.Reference(proxy))
	}
	// Refused before writing: the check says what is needed and free.
	os.WriteFile(filepath.Join(mnt, "taken"), make([]byte, 15<<20), 0o644)
	out := filepath.Join(mnt, "bundle")
	cmd := exec.Command(bin, append([]string{"export", "-o", out, "--src-plain-http"}, refs...)...)
	b, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != exitFailure || !strings.Contains(string(b), "not enough free space") || !strings.Contains(string(b), "are free") {
		t.Fatalf("export that cannot fit: exit %d\n%s", code, b)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the refused export wrote its directory")
	}
	os.Remove(filepath.Join(mnt, "taken"))
	refill()
	// Room at the check, and then the disk fills up.
	cmd = exec.Command(bin, append([]string{"export", "-o", out, "--src-plain-http"}, refs...)...)
	b, _ = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != exitFailure || !strings.Contains(string(b), "no space left on device") {
		t.Fatalf("export onto a disk that fills up: exit %d\n%s", code, b)
	}
	if left := tempFiles(mnt); len(left) > 0 {
		t.Errorf("temp files left on the full disk: %v", left)
	}
	v := exec.Command(bin, "verify", out)
	vb, _ := v.CombinedOutput()
	if v.ProcessState.ExitCode() == 0 || !strings.Contains(string(vb), "incomplete") {
		t.Fatalf("verify of the incomplete bundle: exit %d\n%s", v.ProcessState.ExitCode(), vb)
	}
	// The tarball form leaves nothing at all.
	tarOut := filepath.Join(mnt, "b.tar")
	os.Remove(filepath.Join(mnt, "filler"))
	os.RemoveAll(out)
	refill()
	cmd = exec.Command(bin, append([]string{"export", "-o", tarOut, "--src-plain-http"}, refs...)...)
	b, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != exitFailure || !strings.Contains(string(b), "no space left on device") {
		t.Fatalf("tar export onto a disk that fills up: %s", b)
	}
	if _, err := os.Stat(tarOut); err == nil {
		t.Error("a partial tarball appeared at its final path")
	}
}
