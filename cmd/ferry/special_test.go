package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

// Special files in a directory bundle are refused with exit 3, naming
// them, and never opened as files: a FIFO index.json blocked verify and
// import forever. Symlinks to regular files, inside or outside the bundle,
// are followed (their bytes are verified like any other).
func TestSpecialFilesAreRefusedNotOpened(t *testing.T) {
	t.Parallel()
	src := regtest.New(t, regtest.Distribution)
	set, _ := imagegen.Generate(imagegen.Options{Apps: 1, LayerSize: 8 << 10})
	if err := set.Push(context.Background(), src.Host); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(t.TempDir(), "b")
	if code, _, stderr := ferry(t, "export", set.Images[1].Reference(src.Host), "-o", good, "--src-plain-http"); code != 0 {
		t.Fatal(stderr)
	}
	blobs, _ := filepath.Glob(filepath.Join(good, "blobs", "sha256", "*"))
	blob := "blobs/sha256/" + filepath.Base(blobs[0])
	outside := t.TempDir()
	special := map[string]func(path string) error{
		"a FIFO":                   func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"a directory":              func(p string) error { return os.Mkdir(p, 0o755) },
		"a symlink to a directory": func(p string) error { return os.Symlink(outside, p) },
	}
	for _, file := range []string{layout.FileIndex, layout.FileOCILayout, layout.FileBundle, blob} {
		for kind, mk := range special {
			dir := filepath.Join(t.TempDir(), "b")
			os.CopyFS(dir, os.DirFS(good))
			p := filepath.Join(dir, file)
			os.Chmod(p, 0o644)
			os.Remove(p)
			if err := mk(p); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range [][]string{{"verify", dir}, {"import", dir, "--to", "127.0.0.1:1/x", "--dest-plain-http"}} {
				done := make(chan struct{})
				var code int
				var stderr string
				go func() { code, _, stderr = ferry(t, cmd...); close(done) }()
				select {
				case <-done:
				case <-time.After(30 * time.Second):
					t.Fatalf("%s with %s as %s: still running after 30 s (blocked opening it?)", cmd[0], file, kind)
				}
				if code != exitInvalid || !strings.Contains(stderr, filepath.Base(file)) {
					t.Errorf("%s with %s as %s: exit %d, want %d naming it\n%s", cmd[0], file, kind, code, exitInvalid, stderr)
				}
			}
		}
	}
	// Symlinks to regular files are followed, inside the bundle and out.
	dir := filepath.Join(t.TempDir(), "b")
	os.CopyFS(dir, os.DirFS(good))
	copyOut := filepath.Join(outside, "index.json")
	os.WriteFile(copyOut, mustRead(t, filepath.Join(good, layout.FileIndex)), 0o644)
	os.Remove(filepath.Join(dir, layout.FileIndex))
	os.Symlink(copyOut, filepath.Join(dir, layout.FileIndex))
	p := filepath.Join(dir, blob)
	os.Rename(p, p+".real")
	os.Symlink(filepath.Base(p)+".real", p)
	if code, stdout, stderr := ferry(t, "verify", dir); code != 0 {
		t.Errorf("verify through symlinks to regular files: exit %d\n%s%s", code, stdout, stderr)
	}
}
