package bundle_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
	"github.com/ferry-oci/ferry/verify"
)

// once reports true the first time it sees a key.
type once struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (o *once) first(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen == nil {
		o.seen = map[string]bool{}
	}
	if o.seen[key] {
		return false
	}
	o.seen[key] = true
	return true
}

// resetMidBody serves half of the upstream response, then drops the
// connection.
func resetMidBody(t *testing.T, upstream string, w http.ResponseWriter, r *http.Request) {
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+upstream+r.URL.RequestURI(), nil)
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.CopyN(w, resp.Body, resp.ContentLength/2)
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

func TestExportSurvivesResetsAndServerErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, set, _ := seed(t, regtest.Distribution, imagegen.Options{LayerSize: 256 << 10})
	var resets, errs once
	var resetCount atomic.Int32
	proxy := regtest.NewProxy(t, src, func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") && r.Header.Get("Range") == "" && resets.first(r.URL.Path):
			resetCount.Add(1)
			resetMidBody(t, src.Host, w, r)
			return true
		case strings.Contains(r.URL.Path, "/manifests/") && errs.first(r.Method+r.URL.Path):
			code := []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusInternalServerError}[len(r.URL.Path)%4]
			http.Error(w, "flaky", code)
			return true
		}
		return false
	})
	var refs []string
	for _, img := range set.Images {
		refs = append(refs, img.Reference(proxy))
	}
	for _, out := range []string{"dir", "b.tar"} {
		resets, errs = once{}, once{}
		path := filepath.Join(t.TempDir(), out)
		if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: path, Source: plain}); err != nil {
			t.Fatalf("%s: export through a flaky proxy: %v", out, err)
		}
		rep, err := verify.Path(ctx, path, verify.Options{})
		if err != nil || !rep.OK() || rep.Blobs != len(set.Digests()) {
			t.Fatalf("%s: the bundle does not verify: %v %v", out, err, rep.Err())
		}
	}
	if resetCount.Load() == 0 {
		t.Fatal("the proxy never reset a download: the test tested nothing")
	}
}

func TestImportSurvivesFlakyDestination(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, set, out := exportSet(t, regtest.Debian)
	dst := regtest.New(t, regtest.Debian)
	var puts, posts, heads once
	var faults atomic.Int32
	proxy := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") && puts.first(r.URL.Query().Get("digest")):
			io.Copy(io.Discard, r.Body)
			faults.Add(1)
			http.Error(w, "upstream hiccup", http.StatusInternalServerError)
			return true
		case r.Method == http.MethodPost && posts.first(r.URL.Path):
			faults.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return true
		case r.Method == http.MethodHead && heads.first(r.URL.Path):
			faults.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		time.Sleep(5 * time.Millisecond) // a slow link
		return false
	})
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: proxy + "/mirror", Dest: plain}); err != nil {
		t.Fatalf("import through a flaky proxy: %v", err)
	}
	if faults.Load() < 3 {
		t.Fatalf("only %d faults injected", faults.Load())
	}
	assertImported(t, set, dst.Host, "mirror")
}

// readTwiceForms are the tarball forms import can read a blob of twice
// (true) or only once (false), as export writes them and import opens them.
var readTwiceForms = []struct {
	name, out, open string
	split           int64
	twice           bool
}{
	{"tar", "b.tar", "b.tar", 0, true},
	{"split", "s.tar", "s.tar.000", 64 << 10, true},
	{"targz", "b.tar.gz", "b.tar.gz", 0, false},
}

// An upload from a tarball that fails after its bytes have gone by is tried
// again with the blob read anew from the file or split set; a gzipped
// tarball cannot be read again, so there the import stops, pushes no tag,
// and a re-run finishes it. The layers are over 1 MiB: the size up to which
// import holds a blob in memory (and retries from there).
func TestTarballImportRetriesUploadsFromTheFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, set, refs := seed(t, regtest.Distribution, imagegen.Options{LayerSize: 3 << 19})
	work := t.TempDir()
	dst := regtest.New(t, regtest.Distribution)
	for _, f := range readTwiceForms {
		if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: filepath.Join(work, f.out), SplitSize: f.split, Source: plain}); err != nil {
			t.Fatal(err)
		}
		// The first PUT of every blob is read to the end, then refused.
		var puts once
		var faults atomic.Int32
		var healed atomic.Bool
		proxy := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
			if !healed.Load() && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") && puts.first(r.URL.Query().Get("digest")) {
				io.Copy(io.Discard, r.Body)
				faults.Add(1)
				http.Error(w, "upstream hiccup", http.StatusBadGateway)
				return true
			}
			return false
		})
		in := filepath.Join(work, f.open)
		_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: in, To: proxy + "/" + f.name, Dest: plain})
		if faults.Load() == 0 {
			t.Fatalf("%s: no fault injected", f.name)
		}
		if f.twice {
			if err != nil {
				t.Fatalf("%s: import through refused uploads: %v", f.name, err)
			}
			assertImported(t, set, dst.Host, f.name)
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "502") {
			t.Fatalf("%s: import through refused uploads: %v, want the registry's 502", f.name, err)
		}
		assertUntagged(t, set, dst.Host, f.name)
		// Once the registry is well again, a re-run finishes it.
		healed.Store(true)
		if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: in, To: proxy + "/" + f.name, Dest: plain}); err != nil {
			t.Fatalf("%s: re-run: %v", f.name, err)
		}
		assertImported(t, set, dst.Host, f.name)
	}
}

// A small blob is held in memory while it is uploaded from a tarball, so
// even a gzipped tarball's upload is tried again after a failure.
func TestGzipTarballImportRetriesSmallBlobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, set, refs := seed(t, regtest.Distribution, imagegen.Options{})
	in := filepath.Join(t.TempDir(), "b.tar.gz")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: in, Source: plain}); err != nil {
		t.Fatal(err)
	}
	dst := regtest.New(t, regtest.Distribution)
	var puts once
	var faults atomic.Int32
	proxy := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") && puts.first(r.URL.Query().Get("digest")) {
			io.Copy(io.Discard, r.Body)
			faults.Add(1)
			http.Error(w, "upstream hiccup", http.StatusBadGateway)
			return true
		}
		return false
	})
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: in, To: proxy + "/m", Dest: plain}); err != nil {
		t.Fatalf("import through refused uploads: %v", err)
	}
	if faults.Load() == 0 {
		t.Fatal("no fault injected")
	}
	assertImported(t, set, dst.Host, "m")
}

// A registry that answers a mount with a new upload session gets the blob
// uploaded instead: from a tarball file or split set, read again from its
// place; a gzipped tarball cannot be read again, and the error says so.
func TestTarballImportUploadsWhatTheRegistryWillNotMount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, set, refs := seed(t, regtest.Distribution, imagegen.Options{})
	work := t.TempDir()
	dst := regtest.New(t, regtest.Distribution)
	var refused atomic.Int32
	proxy := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
		if q := r.URL.Query(); r.Method == http.MethodPost && q.Get("mount") != "" {
			q.Del("mount")
			q.Del("from")
			r.URL.RawQuery = q.Encode() // the registry opens an upload session: 202
			refused.Add(1)
		}
		return false
	})
	for _, f := range readTwiceForms {
		if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: filepath.Join(work, f.out), SplitSize: f.split, Source: plain}); err != nil {
			t.Fatal(err)
		}
		refused.Store(0)
		_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: filepath.Join(work, f.open), To: proxy + "/" + f.name, Dest: plain})
		if refused.Load() == 0 {
			t.Fatalf("%s: no mount was asked for", f.name)
		}
		if f.twice {
			if err != nil {
				t.Fatalf("%s: %v", f.name, err)
			}
			assertImported(t, set, dst.Host, f.name)
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "cannot be read twice") {
			t.Fatalf("%s: %v, want an error that says the tarball cannot be read twice", f.name, err)
		}
	}
}

func TestImportFailsFastOnPermanentErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, set, out := exportSet(t, regtest.Distribution)
	dst := regtest.New(t, regtest.Distribution)
	var blobPuts atomic.Int32
	proxy := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			blobPuts.Add(1)
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			io.WriteString(w, "<html><body><h1>413 Request Entity Too Large</h1></body></html>")
			return true
		}
		return false
	})
	start := time.Now()
	_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: proxy + "/mirror", Dest: plain, Jobs: 1})
	if err == nil {
		t.Fatal("import succeeded through a proxy that refuses every upload")
	}
	if !strings.Contains(err.Error(), "413") || !strings.Contains(err.Error(), "body size limit") || !failedOn(err, registry.Destination) {
		t.Errorf("the error does not say what happened and what to do:\n%v", err)
	}
	if n := blobPuts.Load(); n != 1 {
		t.Errorf("%d uploads tried; a permanent error must fail at the first, without retries", n)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("failing took %s", time.Since(start))
	}
	assertUntagged(t, set, dst.Host, "mirror")
}

// A re-import of a bundle the destination already holds asks, and sends
// nothing: HEAD requests (and GETs of tags) only.
func TestReimportOnlyAsks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, _, out := exportSet(t, regtest.Distribution)
	dst := regtest.New(t, regtest.Distribution)
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/m", Dest: plain}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	methods := map[string]int{}
	proxy := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		methods[r.Method]++
		mu.Unlock()
		return false
	})
	res, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: proxy + "/m", Dest: plain})
	if err != nil {
		t.Fatal(err)
	}
	for m, n := range methods {
		if m != http.MethodHead && m != http.MethodGet {
			t.Errorf("a re-import sent %d %s request(s)", n, m)
		}
	}
	if methods[http.MethodHead] == 0 || res.Summary.Sent != 0 {
		t.Errorf("methods %v, sent %d", methods, res.Summary.Sent)
	}
	// What is below a tag already at its image is provably there: a
	// re-import of N images costs at most 1.5 N requests (it HEADed every
	// blob in every repository), and --verify-first still checks it all.
	total := 0
	for _, n := range methods {
		total += n
	}
	if limit := len(res.Targets) * 3 / 2; total > limit {
		t.Errorf("a re-import of %d images sent %d requests, more than %d", len(res.Targets), total, limit)
	}
	mu.Lock()
	methods = map[string]int{}
	mu.Unlock()
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: proxy + "/m", Dest: plain, VerifyFirst: true}); err != nil {
		t.Fatal(err)
	}
	if methods[http.MethodHead] <= len(res.Targets) {
		t.Errorf("--verify-first asked only %d HEADs: it should check every blob", methods[http.MethodHead])
	}
}

func TestPermanentErrorsAreNotRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, set, _ := seed(t, regtest.Distribution, imagegen.Options{})
	layer, _ := largestLayer(set)
	var gets atomic.Int32
	proxy := regtest.NewProxy(t, src, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+layer.String()) {
			gets.Add(1)
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`, http.StatusNotFound)
			return true
		}
		return false
	})
	var refs []string
	for _, img := range set.Images {
		refs = append(refs, img.Reference(proxy))
	}
	_, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: filepath.Join(t.TempDir(), "b"), Source: plain, Jobs: 1})
	if !failedOn(err, registry.Source) || !strings.Contains(err.Error(), layer.String()) || !strings.Contains(err.Error(), "does not have it") {
		t.Fatalf("export of a blob the source lost: %v", err)
	}
	// Each source repository that uses the blob is asked once; none twice.
	users := 0
	for _, img := range set.Images {
		for _, d := range set.Graph[img.Root.Digest] {
			if d.Digest == layer {
				users++
			}
		}
	}
	if n := gets.Load(); int(n) != users {
		t.Errorf("a 404 was asked %d times of %d repositories", n, users)
	}

	_, _, out := exportSet(t, regtest.Distribution)
	dst := regtest.New(t, regtest.Distribution)
	var posts atomic.Int32
	proxyDst := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost {
			posts.Add(1)
			http.Error(w, `{"errors":[{"code":"DENIED","message":"quota exceeded"}]}`, http.StatusForbidden)
			return true
		}
		return false
	})
	_, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: proxyDst + "/m", Dest: plain, Jobs: 1})
	if !failedOn(err, registry.Destination) || !strings.Contains(err.Error(), "quota exceeded") {
		t.Fatalf("import refused with 403: %v", err)
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("a 403 was tried %d times", n)
	}
}

// A registry that answers a manifest push with success but keeps nothing
// cannot produce a reported success: import checks, after the tags, that
// every tag it set resolves to its image and every manifest it pushed is
// there.
func TestImportChecksTheDestinationKeptWhatItAccepted(t *testing.T) {
	t.Parallel()
	_, set, out := exportSet(t, regtest.Distribution)
	dst := regtest.New(t, regtest.Distribution)
	victim := set.Images[1].Repository // team/app1
	proxy := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v2/m/"+victim+"/manifests/") {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Docker-Content-Digest", digest.FromBytes(body).String())
			w.WriteHeader(http.StatusCreated) // and keep nothing
			return true
		}
		return false
	})
	_, err := bundle.Import(context.Background(), bundle.ImportOptions{Bundle: out, To: proxy + "/m", Dest: plain})
	if !errors.Is(err, bundle.ErrNotKept) || !strings.Contains(err.Error(), "m/"+victim) {
		t.Fatalf("import into a registry that keeps nothing of %s: %v", victim, err)
	}
}

// logLines is a Progress that keeps what it is told to log.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Start(string, int64) {}
func (l *logLines) Add(int64)           {}
func (l *logLines) Done()               {}
func (l *logLines) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}
func (l *logLines) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// A registry that accepts the connection and never answers: the wait shows
// on the progress line while it lasts, it is bounded by the timeout, and
// the error names the host, the request and how long it waited (it was 5
// minutes of silence a request, 5 attempts).
func TestStallsAreVisibleAndBounded(t *testing.T) {
	t.Parallel()
	_, _, out := exportSet(t, regtest.Distribution)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	host := l.Addr().String()
	log := &logLines{}
	_, err = bundle.Import(context.Background(), bundle.ImportOptions{Bundle: out, To: host + "/m", Dest: registry.Options{PlainHTTP: true, Timeout: 3 * time.Second}, Progress: log})
	var stall *registry.StallError
	if !errors.As(err, &stall) || stall.Host != host || stall.Waited < 3*time.Second || !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "--timeout") {
		t.Fatalf("import into a registry that never answers: %v", err)
	}
	if !strings.Contains(log.all(), "waiting for "+host) {
		t.Errorf("no wait was shown on the progress line:\n%s", log.all())
	}
}

// --debug logs each registry request, with no credential in it.
func TestDebugLogsRequestsWithoutSecrets(t *testing.T) {
	t.Parallel()
	_, _, out := exportSet(t, regtest.Distribution)
	const secret = "s3cret-pass"
	dst := regtest.NewWith(t, regtest.Distribution, regtest.Options{Users: map[string]string{"alice": secret}})
	log := &logLines{}
	if _, err := bundle.Import(context.Background(), bundle.ImportOptions{Bundle: out, To: dst.Host + "/m", Dest: registry.Options{PlainHTTP: true, Credentials: "alice:" + secret, Debug: true}, Progress: log}); err != nil {
		t.Fatal(err)
	}
	all := log.all()
	if !strings.Contains(all, "debug: HEAD http://"+dst.Host+"/v2/m/") || !strings.Contains(all, "debug: PUT http://"+dst.Host+"/v2/m/") || !strings.Contains(all, "201 Created") {
		t.Errorf("--debug does not log the requests:\n%.2000s", all)
	}
	if strings.Contains(all, secret) || strings.Contains(all, base64.StdEncoding.EncodeToString([]byte("alice:"+secret))) {
		t.Error("--debug logged the password")
	}
	if strings.Contains(all, "_state=") && !strings.Contains(all, "_state=REDACTED") {
		t.Error("--debug logged an upload's state unredacted")
	}
}

// concurrency is a proxy hook that records, for requests match picks, the
// most that were in flight at once. Each such request waits (5 s at most)
// for a second one to arrive: sent one after another, they never overlap;
// sent at once, they meet.
type concurrency struct {
	mu       sync.Mutex
	inFlight int
	most     int
	met      chan struct{}
	once     sync.Once
}

func (c *concurrency) hold() {
	c.mu.Lock()
	c.inFlight++
	c.most = max(c.most, c.inFlight)
	if c.inFlight >= 2 {
		c.once.Do(func() { close(c.met) })
	}
	c.mu.Unlock()
	select {
	case <-c.met:
	case <-time.After(5 * time.Second):
	}
	c.mu.Lock()
	c.inFlight--
	c.mu.Unlock()
}

// importOverlapping imports the bundle at in through a proxy that holds
// each request kind names (as kind picks it, "" for none) until a second
// one of the same kind arrives, and fails t for each kind that never had
// two in flight at once.
func importOverlapping(t *testing.T, in string, set *imagegen.Set, kind func(*http.Request) string, names ...string) {
	t.Helper()
	dst := regtest.New(t, regtest.Distribution)
	kinds := map[string]*concurrency{}
	for _, k := range names {
		kinds[k] = &concurrency{met: make(chan struct{})}
	}
	proxy := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
		if c := kinds[kind(r)]; c != nil {
			c.hold()
		}
		return false
	})
	if _, err := bundle.Import(context.Background(), bundle.ImportOptions{Bundle: in, To: proxy + "/m", Dest: plain}); err != nil {
		t.Fatal(err)
	}
	assertImported(t, set, dst.Host, "m")
	for k, c := range kinds {
		if c.most < 2 {
			t.Errorf("%s: at most %d in flight at once; they ran one after another", k, c.most)
		}
	}
}

func isMount(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Get("mount") != ""
}

// Tag lookups, tag pushes and the mounts of a shared layer run in
// parallel, not one after another.
func TestTagsAndMountsRunInParallel(t *testing.T) {
	t.Parallel()
	_, set, out := exportSet(t, regtest.Distribution)
	isTag := func(r *http.Request) bool {
		ref := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		return strings.Contains(r.URL.Path, "/manifests/") && !strings.HasPrefix(ref, "sha256:")
	}
	importOverlapping(t, out, set, func(r *http.Request) string {
		switch {
		case r.Method == http.MethodHead && isTag(r):
			return "tag lookup"
		case r.Method == http.MethodPut && isTag(r):
			return "tag push"
		case isMount(r):
			return "mount"
		}
		return ""
	}, "tag lookup", "tag push", "mount")
}

// A tarball is read once, in order, but its uploads and mounts do not wait
// for one another: small blobs are held in memory while they go.
func TestTarballImportKeepsUploadsInFlight(t *testing.T) {
	t.Parallel()
	_, set, refs := seed(t, regtest.Distribution, imagegen.Options{})
	tarball := filepath.Join(t.TempDir(), "b.tar")
	if _, err := bundle.Export(context.Background(), bundle.ExportOptions{References: refs, Output: tarball, Source: plain}); err != nil {
		t.Fatal(err)
	}
	importOverlapping(t, tarball, set, func(r *http.Request) string {
		switch {
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/"):
			return "upload"
		case isMount(r):
			return "mount"
		}
		return ""
	}, "upload", "mount")
}

// A tarball is written in the bundle's order, but its blobs are downloaded
// ahead, several at once, not one after another.
func TestTarballExportFetchesAhead(t *testing.T) {
	t.Parallel()
	src, set, _ := seed(t, regtest.Distribution, imagegen.Options{})
	c := &concurrency{met: make(chan struct{})}
	proxy := regtest.NewProxy(t, src, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			c.hold()
		}
		return false
	})
	var refs []string
	for _, img := range set.Images {
		refs = append(refs, img.Reference(proxy))
	}
	path := filepath.Join(t.TempDir(), "b.tar")
	if _, err := bundle.Export(context.Background(), bundle.ExportOptions{References: refs, Output: path, Source: plain}); err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Path(context.Background(), path, verify.Options{})
	if err != nil || !rep.OK() || rep.Blobs != len(set.Digests()) {
		t.Fatalf("the bundle does not verify: %v %v", err, rep.Err())
	}
	if c.most < 2 {
		t.Errorf("at most %d blob downloads in flight at once; they ran one after another", c.most)
	}
}

// An export asks for each image's root once (a GET that brings the
// descriptor with it, no HEAD before it), each blob once, and probes the
// referrers API once per registry, not once per repository.
func TestExportRequestsPerImage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, set, _ := seed(t, regtest.Distribution, imagegen.Options{Apps: 12, Repositories: 6, Bases: 2, MultiArchEvery: 4})
	proxy, seen := countingProxy(t, src)
	var refs []string
	for _, img := range set.Images {
		refs = append(refs, img.Reference(proxy))
	}
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: filepath.Join(t.TempDir(), "b"), Source: plain, Jobs: 1}); err != nil {
		t.Fatal(err)
	}
	for _, img := range set.Images {
		root := "/v2/" + img.Repository + "/manifests/" + img.Tag
		if seen["GET "+root] != 1 || seen["HEAD "+root] != 0 {
			t.Errorf("%s:%s: %d GET and %d HEAD of its tag, want 1 GET", img.Repository, img.Tag, seen["GET "+root], seen["HEAD "+root])
		}
	}
	probes := 0
	for k, n := range seen {
		if strings.Contains(k, "/referrers/") {
			probes += n
		}
		if strings.Contains(k, "/blobs/") && n > 1 {
			t.Errorf("%s sent %d times", k, n)
		}
	}
	if probes != 1 {
		t.Errorf("the referrers API was asked for %d times over %d repositories; once tells for the registry", probes, len(set.Images))
	}
}

// A fresh import asks for each image's root manifest once before pushing
// it and, after, checks its tag: the tag resolving to the image shows the
// root is there, with no request of its own. A root nothing refers to is
// stored by its tag push, not pushed by digest first.
func TestImportChecksEachRootOnce(t *testing.T) {
	t.Parallel()
	_, set, out := exportSet(t, regtest.Distribution)
	dst := regtest.New(t, regtest.Distribution)
	proxy, seen := countingProxy(t, dst)
	if _, err := bundle.Import(context.Background(), bundle.ImportOptions{Bundle: out, To: proxy + "/m", Dest: plain}); err != nil {
		t.Fatal(err)
	}
	for _, img := range set.Images {
		byDigest := "HEAD /v2/m/" + img.Repository + "/manifests/" + img.Root.Digest.String()
		byTag := "HEAD /v2/m/" + img.Repository + "/manifests/" + img.Tag
		if seen[byDigest] != 1 || seen[byTag] != 2 {
			t.Errorf("%s:%s: %d HEADs of its root and %d of its tag; want 1 (before the push) and 2 (the plan, the check after)", img.Repository, img.Tag, seen[byDigest], seen[byTag])
		}
		// Nothing refers to it: its root is stored by its tag push alone.
		if put := "PUT" + strings.TrimPrefix(byDigest, "HEAD"); seen[put] != 0 || seen["PUT"+strings.TrimPrefix(byTag, "HEAD")] != 1 {
			t.Errorf("%s:%s: root pushed %d times by digest and %d by tag; want 0 and 1", img.Repository, img.Tag, seen[put], seen["PUT"+strings.TrimPrefix(byTag, "HEAD")])
		}
	}
}

// countingProxy is a pass-through proxy in front of s; the map it returns
// counts the requests by "METHOD path", to be read once the work is done.
func countingProxy(t *testing.T, s *regtest.Server) (string, map[string]int) {
	var mu sync.Mutex
	seen := map[string]int{}
	proxy := regtest.NewProxy(t, s, func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		seen[r.Method+" "+r.URL.Path]++
		mu.Unlock()
		return false
	})
	return proxy, seen
}
