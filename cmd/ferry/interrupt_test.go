package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

// ferryBin is the ferry binary the subprocess tests run, built once.
var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// TestMain removes the binary's directory when the tests are done, so no
// run leaves a ferry-bin-* directory behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func ferryBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ferry-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "ferry")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = &exec.ExitError{Stderr: out}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// slowSource seeds a registry and puts a proxy in front of it that delays
// every blob download, calling onBlob with the running count and the
// request first.
func slowSource(t *testing.T, onBlob func(n int32, r *http.Request)) (*imagegen.Set, []string) {
	src := regtest.New(t, regtest.Distribution)
	set, _ := imagegen.Generate(imagegen.Options{Apps: 4, LayerSize: 512 << 10})
	if err := set.Push(context.Background(), src.Host); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	proxy := regtest.NewProxy(t, src, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			onBlob(n.Add(1), r)
			time.Sleep(150 * time.Millisecond)
		}
		return false
	})
	var refs []string
	for _, img := range set.Images {
		refs = append(refs, img.Reference(proxy))
	}
	return set, refs
}

// runTracked runs cmd, publishing its process for the proxy's handlers
// (which signal it), and returns its combined output.
func runTracked(cmd *exec.Cmd, proc *atomic.Pointer[os.Process]) ([]byte, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	proc.Store(cmd.Process)
	err := cmd.Wait()
	return []byte(out.String()), err
}

// exportedBundle seeds a registry with a few images and exports them with
// the ferry binary into a directory bundle.
func exportedBundle(t *testing.T, bin string) (*imagegen.Set, string) {
	t.Helper()
	src := regtest.New(t, regtest.Distribution)
	set, _ := imagegen.Generate(imagegen.Options{Apps: 4, LayerSize: 512 << 10})
	if err := set.Push(context.Background(), src.Host); err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, img := range set.Images {
		refs = append(refs, img.Reference(src.Host))
	}
	out := filepath.Join(t.TempDir(), "bundle")
	if b, err := exec.Command(bin, append([]string{"export", "-o", out, "--src-plain-http"}, refs...)...).CombinedOutput(); err != nil {
		t.Fatalf("export: %v\n%s", err, b)
	}
	return set, out
}

func tempFiles(root string) []string {
	var out []string
	filepath.Walk(root, func(path string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(fi.Name(), layout.TempPrefix) {
			out = append(out, path)
		}
		return nil
	})
	return out
}

func TestSignalsStopExportCleanly(t *testing.T) {
	t.Parallel()
	bin := ferryBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		for _, out := range []string{"dir", "b.tar"} {
			t.Run(sig.String()+"/"+out, func(t *testing.T) {
				var proc atomic.Pointer[os.Process]
				var sent atomic.Bool
				_, refs := slowSource(t, func(n int32, _ *http.Request) {
					if n == 3 && sent.CompareAndSwap(false, true) {
						proc.Load().Signal(sig)
					}
				})
				work := t.TempDir()
				target := filepath.Join(work, out)
				cmd := exec.Command(bin, append([]string{"export", "-o", target, "--src-plain-http"}, refs...)...)
				output, err := runTracked(cmd, &proc)
				if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
					t.Fatalf("exit %d (%v), want %d\n%s", code, err, exitInterrupted, output)
				}
				if !strings.Contains(string(output), "interrupted") || !strings.Contains(string(output), "run the same export again to resume") {
					t.Errorf("an interrupted export should say so and how to resume:\n%s", output)
				}
				if left := tempFiles(work); len(left) > 0 {
					t.Errorf("temp files left behind: %v", left)
				}
				for _, f := range []string{filepath.Join(target, layout.FileIndex), filepath.Join(target, layout.FileBundle)} {
					if _, err := os.Stat(f); err == nil {
						t.Errorf("%s exists after an interrupted export", f)
					}
				}
				if out == "b.tar" {
					if _, err := os.Stat(target); err == nil {
						t.Error("the tarball appeared at its final path after an interrupted export")
					}
				}
			})
		}
	}
}

func TestKilledExportResumes(t *testing.T) {
	t.Parallel()
	bin := ferryBinary(t)
	var proc atomic.Pointer[os.Process]
	var killed atomic.Bool
	var gets atomic.Int32
	set, refs := slowSource(t, func(n int32, r *http.Request) {
		gets.Add(1)
		// Two downloads at a time, largest first: the third starts only
		// when one of the first two is in the bundle. Hold it, kill ferry,
		// and let it go once ferry's connection is gone.
		if n >= 3 && !killed.Load() {
			if n == 3 {
				proc.Load().Kill()
			}
			<-r.Context().Done()
			killed.Store(true)
		}
	})
	out := filepath.Join(t.TempDir(), "bundle")
	cmd := exec.Command(bin, append([]string{"export", "-o", out, "--src-plain-http", "-j", "2"}, refs...)...)
	runTracked(cmd, &proc)
	if cmd.ProcessState.Success() {
		t.Fatal("the export finished before it could be killed")
	}
	// Which configs and layers made it?
	layers := map[digest.Digest]bool{}
	for _, img := range set.Images {
		for _, d := range set.Graph[img.Root.Digest] {
			if !layout.IsManifest(d.MediaType) {
				layers[d.Digest] = true
			}
		}
	}
	present := 0
	for d := range layers {
		if _, err := os.Stat(filepath.Join(out, layout.BlobName(d))); err == nil {
			present++
		}
	}
	if present == 0 || present == len(layers) {
		t.Fatalf("%d of %d blobs present after the kill: the test needs a partial export", present, len(layers))
	}
	gets.Store(0)
	run := exec.Command(bin, append([]string{"export", "-o", out, "--src-plain-http"}, refs...)...)
	if b, err := run.CombinedOutput(); err != nil {
		t.Fatalf("re-run: %v\n%s", err, b)
	}
	if got, want := int(gets.Load()), len(layers)-present; got != want {
		t.Errorf("the re-run downloaded %d blobs; %d were missing", got, want)
	}
	if b, err := exec.Command(bin, "verify", out).CombinedOutput(); err != nil {
		t.Fatalf("verify after resume: %v\n%s", err, b)
	}
}

func TestKilledImportResumes(t *testing.T) {
	t.Parallel()
	bin := ferryBinary(t)
	ctx := context.Background()
	set, out := exportedBundle(t, bin)

	dst := regtest.New(t, regtest.Distribution)
	var proc atomic.Pointer[os.Process]
	var killing atomic.Bool
	var mu sync.Mutex
	var puts []string
	proxy := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			mu.Lock()
			puts = append(puts, r.URL.Query().Get("digest"))
			n := len(puts)
			mu.Unlock()
			if n == 4 && killing.CompareAndSwap(false, true) {
				go func() { time.Sleep(100 * time.Millisecond); proc.Load().Kill() }()
			}
			time.Sleep(150 * time.Millisecond)
		}
		return false
	})
	cmd := exec.Command(bin, "import", out, "--to", proxy+"/m", "--dest-plain-http", "-j", "2")
	runTracked(cmd, &proc)
	if cmd.ProcessState.Success() {
		t.Fatal("the import finished before it could be killed")
	}
	// No tag points anywhere yet: tags come last.
	arrived := map[string]bool{}
	for _, img := range set.Images {
		repo, _ := remote.NewRepository(dst.Host + "/m/" + img.Repository)
		repo.PlainHTTP = true
		if _, err := repo.Resolve(ctx, img.Tag); err == nil {
			t.Errorf("%s:%s is tagged after a killed import", img.Repository, img.Tag)
		}
		for _, d := range set.Graph[img.Root.Digest] {
			if ok, _ := repo.Blobs().Exists(ctx, d); ok && !layout.IsManifest(d.MediaType) {
				arrived[d.Digest.String()] = true
			}
		}
	}
	if len(arrived) == 0 {
		t.Fatal("nothing arrived before the kill: the test needs a partial import")
	}
	mu.Lock()
	puts = nil
	mu.Unlock()
	run := exec.Command(bin, "import", out, "--to", proxy+"/m", "--dest-plain-http")
	if b, err := run.CombinedOutput(); err != nil {
		t.Fatalf("re-run: %v\n%s", err, b)
	}
	for _, d := range puts {
		if arrived[d] {
			t.Errorf("the re-run sent %s again, which had arrived", d)
		}
	}
	if len(puts) == 0 {
		t.Error("the re-run pushed nothing, yet blobs were missing")
	}
	for _, img := range set.Images {
		repo, _ := remote.NewRepository(dst.Host + "/m/" + img.Repository)
		repo.PlainHTTP = true
		if got, err := repo.Resolve(ctx, img.Tag); err != nil || got.Digest != img.Root.Digest {
			t.Errorf("%s:%s after the re-run: %v %v", img.Repository, img.Tag, got.Digest, err)
		}
	}
}

func TestSignalStopsImportCleanly(t *testing.T) {
	t.Parallel()
	bin := ferryBinary(t)
	ctx := context.Background()
	set, out := exportedBundle(t, bin)
	dst := regtest.New(t, regtest.Distribution)
	var proc atomic.Pointer[os.Process]
	var puts atomic.Int32
	proxy := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			if puts.Add(1) == 2 {
				proc.Load().Signal(syscall.SIGINT)
			}
			time.Sleep(300 * time.Millisecond)
		}
		return false
	})
	cmd := exec.Command(bin, "import", out, "--to", proxy+"/m", "--dest-plain-http", "-j", "2")
	output, _ := runTracked(cmd, &proc)
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d, want %d\n%s", code, exitInterrupted, output)
	}
	// No tag, and no upload session left open.
	for _, img := range set.Images {
		repo, _ := remote.NewRepository(dst.Host + "/m/" + img.Repository)
		repo.PlainHTTP = true
		if _, err := repo.Resolve(ctx, img.Tag); err == nil {
			t.Errorf("%s:%s is tagged after an interrupted import", img.Repository, img.Tag)
		}
	}
	time.Sleep(500 * time.Millisecond) // let the registry finish the aborted requests
	var open []string
	filepath.Walk(filepath.Join(dst.Dir, "storage"), func(path string, fi os.FileInfo, err error) error {
		if err == nil && strings.Contains(path, "/_uploads/") && fi.Name() == "startedat" {
			open = append(open, path)
		}
		return nil
	})
	if len(open) > 0 {
		t.Errorf("%d upload session(s) left open: %v", len(open), open)
	}
}
