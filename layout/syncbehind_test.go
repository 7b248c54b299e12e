package layout

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSyncBehindKeepsEveryByte(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewSyncBehind(f)
	w.every = 1000 // an fsync in the background every few writes
	var want bytes.Buffer
	for i := 0; i < 500; i++ {
		chunk := bytes.Repeat([]byte{byte(i)}, 100+i)
		want.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("file has %d bytes, want %d, or they differ", len(got), want.Len())
	}
}

func TestSyncBehindReportsAFailedFsync(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	w := NewSyncBehind(f)
	if _, err := w.Write([]byte("some")); err != nil {
		t.Fatal(err)
	}
	f.Close() // every fsync from now on fails
	if err := w.Sync(); err == nil || !strings.Contains(err.Error(), f.Name()) {
		t.Fatalf("Sync = %v, want an error naming %s", err, f.Name())
	}
}
