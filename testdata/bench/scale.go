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
	"slices"
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
		if requestLog != nil {
			fmt.Fprintf(requestLog, "%s %s %s\n", ln.Addr(), r.Method, r.URL.Path)
		}
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

// requestLog, when set (-request-log), gets every request the proxies see.
var requestLog *os.File

func (p *delayProxy) stop() { p.srv.Close() }

// scaleRow is one measured operation of one tool at one size.
type scaleRow struct {
	op, tool string
	images   int
	s        sample
	requests int64
}

// scaleTools are the tools the scale mode runs: ferry and the two peers
// that sync many images in one run.
var scaleTools = []string{"ferry", "regsync", "skopeo"}

// runScale is the scale mode: a mirror's shape (two tags per repository,
// shared bases, one app in ten multi-arch) at a tenth of c.images and at
// c.images, every request held c.delay, ferry and its peers interleaved,
// so that the growth per image in time, requests and peak memory shows.
func runScale(ctx context.Context, c config, src *regtest.Server) error {
	sp, err := startDelayProxy(src, c.delay)
	if err != nil {
		return err
	}
	defer sp.stop()
	e := &env{config: c, src: src}
	var tools []string
	for _, t := range c.scaleTools {
		if !slices.Contains(scaleTools, t) {
			return fmt.Errorf("-scale-tools: %q is not one of %s", t, strings.Join(scaleTools, ", "))
		}
		if t == "ferry" || e.bin(t) != "" {
			tools = append(tools, t)
		} else {
			log("scale: %s is not installed; left out (make bench installs it)", t)
		}
	}
	var rows []scaleRow
	for _, n := range c.scaleSizes() {
		images, err := pushScaleSet(ctx, src, n)
		if err != nil {
			return err
		}
		r, err := scaleOnce(ctx, e, sp, tools, images)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}
	table := renderScale(c, rows)
	fmt.Println(table)
	return layout.WriteFileBytes(c.scaleOut, 0o644, []byte(table))
}

// scaleSizes is -scale-sizes, or a tenth of -images and -images.
func (c config) scaleSizes() []int {
	if len(c.sizes) > 0 {
		return c.sizes
	}
	return []int{max(1, c.images/10), c.images}
}

// pushScaleSet generates n images in a mirror's shape under a namespace of
// their own and pushes them to src.
func pushScaleSet(ctx context.Context, src *regtest.Server, n int) ([]imagegen.Image, error) {
	set, err := imagegen.Generate(imagegen.Options{
		Apps: n, LayerSize: 1 << 10, Namespace: fmt.Sprintf("n%d", n),
		Repositories: max(1, n/2), Bases: 5, MultiArchEvery: 10,
	})
	if err != nil {
		return nil, err
	}
	images := withoutNested(set.Images)
	set.Images = images
	log("scale: pushing %d images to %s", len(images), src.Host)
	if err := set.Push(ctx, src.Host); err != nil {
		return nil, err
	}
	return images, nil
}

// scaleOnce measures, for images and each tool: export to a directory,
// import of it into a fresh registry and a re-import; then, for ferry,
// export to a tarball and its import. Tools take turns within each
// operation.
func scaleOnce(ctx context.Context, e *env, sp *delayProxy, tools []string, images []imagegen.Image) ([]scaleRow, error) {
	dir := filepath.Join(e.work, fmt.Sprintf("scale-%d", len(images)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var rows []scaleRow
	measure := func(op, tool string, p *delayProxy, cmds []*exec.Cmd) error {
		log("scale: %s %s, %d images", tool, op, len(images))
		before := p.requests.Load()
		s, err := timed(cmds, nil)
		if err != nil {
			return err
		}
		rows = append(rows, scaleRow{op: op, tool: tool, images: len(images), s: s, requests: p.requests.Load() - before})
		return nil
	}
	bundles := map[string]string{}
	for _, tool := range tools {
		out := filepath.Join(dir, tool+"-bundle")
		cmds, err := scaleExport(e, tool, sp.host, images, out)
		if err != nil {
			return nil, err
		}
		if err := measure("export → directory", tool, sp, cmds); err != nil {
			return nil, err
		}
		bundles[tool] = out
	}
	for _, tool := range tools {
		err := withScaleDest(ctx, e, dir, tool+"-dir", func(dp *delayProxy) error {
			for _, op := range []string{"import ← directory", "re-import ← directory"} {
				cmds, err := scaleImport(e, tool, bundles[tool], dp.host, images)
				if err != nil {
					return err
				}
				if err := measure(op, tool, dp, cmds); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if !slices.Contains(tools, "ferry") {
		return rows, nil
	}
	btar := filepath.Join(dir, "ferry-bundle.tar")
	tarCmds, err := scaleExport(e, "ferry", sp.host, images, btar)
	if err != nil {
		return nil, err
	}
	if err := measure("export → tarball", "ferry", sp, tarCmds); err != nil {
		return nil, err
	}
	err = withScaleDest(ctx, e, dir, "ferry-tar", func(dp *delayProxy) error {
		cmds, err := scaleImport(e, "ferry", btar, dp.host, images)
		if err != nil {
			return err
		}
		return measure("import ← tarball", "ferry", dp, cmds)
	})
	return rows, err
}

// withScaleDest runs f against a fresh registry behind a delaying proxy.
func withScaleDest(ctx context.Context, e *env, dir, name string, f func(*delayProxy) error) error {
	dst, err := regtest.Start(ctx, regtest.Distribution, filepath.Join(dir, "dst-"+name), regtest.Options{})
	if err != nil {
		return err
	}
	defer dst.Stop()
	dp, err := startDelayProxy(dst, e.delay)
	if err != nil {
		return err
	}
	defer dp.stop()
	return f(dp)
}

func renderScale(c config, rows []scaleRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# ferry at scale\n\nUp to %d small images in a mirror's shape (two tags per repository, 5 shared base layers, one app in ten multi-arch), every request held %s by a proxy; tools take turns on each operation. Requests are counted at the proxy.\n\n", c.images, c.delay)
	b.WriteString("| operation | images | tool | wall s | requests / image | peak RSS | CPU s | ferry's speed-up |\n|---|---:|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %s | %.2f | %.2f | %s | %.2f | %s |\n", r.op, r.images, r.tool, r.s.wall.Seconds(), float64(r.requests)/float64(r.images), human(r.s.maxRSS), r.s.cpu.Seconds(), speedUp(rows, r))
	}
	return b.String()
}

// speedUp is how many times faster ferry ran the same operation at the same
// size than the tool of r, for a peer's row.
func speedUp(rows []scaleRow, r scaleRow) string {
	if r.tool == "ferry" {
		return ""
	}
	for _, f := range rows {
		if f.tool == "ferry" && f.op == r.op && f.images == r.images {
			return fmt.Sprintf("%.2f×", r.s.wall.Seconds()/f.s.wall.Seconds())
		}
	}
	return ""
}
