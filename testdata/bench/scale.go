package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

// delayProxy stands in front of a registry on 127.0.0.1, holds every
// request for delay (the round trip to a remote Harbor) and counts them.
type delayProxy struct {
	host     string
	requests atomic.Int64
	srv      *http.Server
}

func startDelayProxy(reg *regtest.Server, delay time.Duration) (*delayProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: reg.Host})
	p := &delayProxy{host: ln.Addr().String()}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go p.srv.Serve(ln)
	return p, nil
}

func (p *delayProxy) stop() { p.srv.Close() }

// scaleRow is one measured operation at one size.
type scaleRow struct {
	op       string
	images   int
	s        sample
	requests int64
}

// runScale is the scale mode: many small images over many repositories,
// ferry's export and import measured at a tenth of c.images and at
// c.images, every request held c.delay, so that the growth per image in
// time, requests and peak memory shows.
func runScale(ctx context.Context, c config, src *regtest.Server) error {
	set, err := imagegen.Generate(imagegen.Options{Apps: c.images, LayerSize: 1 << 10})
	if err != nil {
		return err
	}
	set.Images = withoutNested(set.Images)
	log("scale: pushing %d images to %s", len(set.Images), src.Host)
	if err := set.Push(ctx, src.Host); err != nil {
		return err
	}
	set.Blobs = nil
	sp, err := startDelayProxy(src, c.delay)
	if err != nil {
		return err
	}
	defer sp.stop()
	var rows []scaleRow
	for _, n := range []int{max(1, len(set.Images)/10), len(set.Images)} {
		r, err := scaleOnce(ctx, c, sp, set.Images[:n])
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}
	table := renderScale(c, rows)
	fmt.Println(table)
	return layout.WriteFileBytes(c.scaleOut, 0o644, []byte(table))
}

// scaleOnce measures, for images: export to a directory and to a tarball,
// import of each into a fresh registry, and a re-import of the directory.
func scaleOnce(ctx context.Context, c config, sp *delayProxy, images []imagegen.Image) ([]scaleRow, error) {
	dir := filepath.Join(c.work, fmt.Sprintf("scale-%d", len(images)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	list := filepath.Join(dir, "images.txt")
	var refs []string
	for _, img := range images {
		refs = append(refs, img.Reference(sp.host))
	}
	if err := os.WriteFile(list, []byte(strings.Join(refs, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	ferry := func(args ...string) []*exec.Cmd {
		return []*exec.Cmd{exec.Command(c.ferry, append([]string{"-q"}, args...)...)}
	}
	bdir, btar := filepath.Join(dir, "bundle"), filepath.Join(dir, "bundle.tar")
	var rows []scaleRow
	measure := func(op string, p *delayProxy, cmds []*exec.Cmd) error {
		log("scale: %s, %d images", op, len(images))
		before := p.requests.Load()
		s, err := timed(cmds, nil)
		if err != nil {
			return err
		}
		rows = append(rows, scaleRow{op: op, images: len(images), s: s, requests: p.requests.Load() - before})
		return nil
	}
	if err := measure("export → directory", sp, ferry("export", "--images-file", list, "-o", bdir, "--src-plain-http")); err != nil {
		return nil, err
	}
	if err := measure("export → tarball", sp, ferry("export", "--images-file", list, "-o", btar, "--src-plain-http")); err != nil {
		return nil, err
	}
	for _, in := range []struct{ op, path string }{{"import ← directory", bdir}, {"import ← tarball", btar}} {
		dst, err := regtest.Start(ctx, regtest.Distribution, filepath.Join(dir, "dst-"+filepath.Base(in.path)), regtest.Options{})
		if err != nil {
			return nil, err
		}
		dp, err := startDelayProxy(dst, c.delay)
		if err != nil {
			dst.Stop()
			return nil, err
		}
		err = measure(in.op, dp, ferry("import", in.path, "--to", dp.host+"/m", "--dest-plain-http"))
		if err == nil && in.path == bdir {
			err = measure("re-import ← directory", dp, ferry("import", in.path, "--to", dp.host+"/m", "--dest-plain-http"))
		}
		dp.stop()
		dst.Stop()
		if err != nil {
			return nil, err
		}
	}
	return rows, nil
}

func renderScale(c config, rows []scaleRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# ferry at scale\n\n%d small images, one repository each (a shared base layer), every request held %s by a proxy.\n\n", c.images, c.delay)
	b.WriteString("| operation | images | wall s | requests / image | peak RSS | CPU s |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %.2f | %.2f | %s | %.2f |\n", r.op, r.images, r.s.wall.Seconds(), float64(r.requests)/float64(r.images), human(r.s.maxRSS), r.s.cpu.Seconds())
	}
	return b.String()
}
