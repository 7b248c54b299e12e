// Command bench measures ferry side by side with its peers (skopeo, crane,
// regctl, oras) on the same corpus, the same registries and the same
// machine, in one run: every operation is run for every tool, interleaved,
// for several rounds, and the median is reported with peak RSS and CPU, next
// to this machine's measured limits. Speed is judged by ratios in one run,
// never by absolute times. Run it with `make bench`.
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

type config struct {
	ferry, peers, out, work string
	scale, big              int64
	rounds                  int
	referrers               bool
	images                  int           // scale mode: this many images (0: off)
	delay                   time.Duration // scale mode: every request held this long
	scaleOut                string
	sizes                   []int // scale mode: the sizes measured (default: a tenth of images, and images)
	servers                 []regtest.Kind
	tools                   []string
	scaleTools              []string // scale mode: tools to measure
}

func main() {
	var c config
	var servers, tools string
	flag.StringVar(&c.ferry, "ferry", "bin/ferry", "the ferry binary")
	flag.StringVar(&c.peers, "peers", ".cache/bench/bin", "directory with crane, regctl and oras")
	flag.StringVar(&c.out, "out", "testdata/bench/results.md", "where to write the table")
	flag.Int64Var(&c.scale, "scale", 1500<<20, "bytes of unique layers in the corpus")
	flag.Int64Var(&c.big, "big", 2<<30, "size of the single big blob for the memory check (0: skip)")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds (the median is reported)")
	flag.BoolVar(&c.referrers, "referrers", true, "measure what a signature and an SBOM per image cost ferry")
	flag.IntVar(&c.images, "images", 0, "scale mode instead of the standard run: this many small images (e.g. 1000)")
	flag.DurationVar(&c.delay, "delay", 10*time.Millisecond, "scale mode: how long a proxy holds every request")
	flag.StringVar(&c.scaleOut, "scale-out", "testdata/bench/scale.md", "scale mode: where to write the table")
	var sizes, reqLog, scaleToolList string
	flag.StringVar(&scaleToolList, "scale-tools", strings.Join(scaleTools, ","), "scale mode: tools to measure")
	flag.StringVar(&reqLog, "request-log", "", "scale mode: append every request the proxies see (address, method, path) to this file")
	flag.StringVar(&sizes, "scale-sizes", "", "scale mode: comma-separated image counts to measure instead of a tenth of -images and -images")
	flag.StringVar(&servers, "servers", "distribution-v3,docker-registry-2.8", "destination registry servers")
	flag.StringVar(&tools, "tools", "ferry,skopeo,crane,regctl,oras", "tools to measure")
	flag.Parse()
	for _, s := range strings.Split(servers, ",") {
		c.servers = append(c.servers, regtest.Kind(s))
	}
	c.tools = strings.Split(tools, ",")
	for _, s := range strings.Split(sizes, ",") {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			c.sizes = append(c.sizes, n)
		} else if s != "" {
			fmt.Fprintf(os.Stderr, "bench: -scale-sizes: %q is not a positive count\n", s)
			os.Exit(2)
		}
	}
	c.scaleTools = strings.Split(scaleToolList, ",")
	if reqLog != "" {
		f, err := os.OpenFile(reqLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		defer f.Close()
		requestLog = f
	}
	if c.images == 0 && len(c.sizes) > 0 {
		c.images = c.sizes[len(c.sizes)-1]
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// sample is one timed run of one tool on one operation.
type sample struct {
	wall, cpu, regCPU time.Duration
	// onDisk (exports only) is wall plus a sync(2) right after the run:
	// how long until the bundle would survive a power cut or could be
	// unplugged. Tools that do not fsync leave that wait to the user.
	onDisk time.Duration
	maxRSS int64 // bytes
}

type result struct {
	op, tool string
	bytes    int64
	samples  []sample
}

func run(c config) error {
	ctx := context.Background()
	var err error
	if c.ferry, err = filepath.Abs(c.ferry); err != nil {
		return err
	}
	if c.peers, err = filepath.Abs(c.peers); err != nil {
		return err
	}
	if c.work, err = os.MkdirTemp("", "ferry-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(c.work)
	log("work directory %s", c.work)

	src, err := regtest.Start(ctx, regtest.Distribution, filepath.Join(c.work, "src"), regtest.Options{})
	if err != nil {
		return err
	}
	defer src.Stop()
	if c.images > 0 {
		return runScale(ctx, c, src)
	}

	v1, v2, text, err := pushCorpus(ctx, c, src)
	if err != nil {
		return err
	}
	v1.Blobs, v2.Blobs, text.Blobs = nil, nil, nil // the registry has them; free the memory
	env := &env{config: c, src: src, v1: v1, v2: v2, text: text, v2New: newBytes(v1, v2)}
	limits := measureLimits(ctx, c, src, v1)
	debug.FreeOSMemory()

	log("preparing each tool's own bundles (untimed)")
	if err := env.prepare(ctx); err != nil {
		return err
	}
	results, err := env.measureRounds(ctx)
	if err != nil {
		return err
	}
	var big, referrers []string
	if c.big > 0 {
		if big, err = env.bigBlob(ctx); err != nil {
			return err
		}
	}
	if c.referrers {
		if referrers, err = env.referrerCost(ctx); err != nil {
			return err
		}
	}
	table := render(c, limits, results, big, referrers)
	fmt.Println(table)
	if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err != nil {
		return err
	}
	return layout.WriteFileBytes(c.out, 0o644, []byte(table))
}

// pushCorpus generates the corpus and pushes it to src: a shared base, 8
// apps, a multi-arch index; v2 changes every app's top layer; a text
// variant compresses.
func pushCorpus(ctx context.Context, c config, src *regtest.Server) (v1, v2, text *imagegen.Set, err error) {
	layerSize := int(c.scale / 11)
	v1, err = imagegen.Generate(imagegen.Options{Apps: 8, LayerSize: layerSize, Version: 1})
	if err != nil {
		return nil, nil, nil, err
	}
	v2, err = imagegen.Generate(imagegen.Options{Apps: 8, LayerSize: layerSize, Version: 2})
	if err != nil {
		return nil, nil, nil, err
	}
	v1.Images, v2.Images = withoutNested(v1.Images), withoutNested(v2.Images)
	log("pushing the corpus (%s a version) to %s", human(unique(v1)), src.Host)
	for _, set := range []*imagegen.Set{v1, v2} {
		if err := set.Push(ctx, src.Host); err != nil {
			return nil, nil, nil, err
		}
	}
	// The text variant: layers that compress, in a namespace of their own.
	text, err = imagegen.Generate(imagegen.Options{Apps: 8, LayerSize: layerSize, Compressible: true, Namespace: "text"})
	if err != nil {
		return nil, nil, nil, err
	}
	text.Images = withoutNested(text.Images)
	log("pushing the text corpus (%s)", human(unique(text)))
	if err := text.Push(ctx, src.Host); err != nil {
		return nil, nil, nil, err
	}
	return v1, v2, text, nil
}

// measureRounds measures every operation with every tool, c.rounds times, the
// tools' order turned each round.
func (env *env) measureRounds(ctx context.Context) ([]*result, error) {
	var results []*result
	add := func(op, tool string, bytes int64, s sample) {
		for _, r := range results {
			if r.op == op && r.tool == tool {
				r.samples = append(r.samples, s)
				return
			}
		}
		results = append(results, &result{op: op, tool: tool, bytes: bytes, samples: []sample{s}})
	}

	for round := 0; round < env.config.rounds; round++ {
		tools := rotate(env.available(), round)
		for _, op := range env.ops() {
			for _, tool := range tools {
				s, ok, err := env.measure(ctx, op, tool, round)
				if err != nil {
					return nil, fmt.Errorf("%s / %s: %w", op.name, tool, err)
				}
				if ok {
					add(op.name, tool, op.bytes, s)
					log("round %d  %-28s %-7s %7.2fs  rss %s", round+1, op.name, tool, s.wall.Seconds(), human(s.maxRSS))
				}
			}
		}
	}
	return results, nil
}

// withoutNested leaves out the image whose index nests another: skopeo
// cannot copy it.
func withoutNested(images []imagegen.Image) []imagegen.Image {
	var keep []imagegen.Image
	for _, img := range images {
		if !strings.HasSuffix(img.Repository, "library/nested") {
			keep = append(keep, img)
		}
	}
	return keep
}

func log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func unique(set *imagegen.Set) int64 {
	var n int64
	seen := map[string]bool{}
	for _, img := range set.Images {
		for _, d := range set.Graph[img.Root.Digest] {
			if !seen[d.Digest.String()] {
				seen[d.Digest.String()] = true
				n += d.Size
			}
		}
	}
	return n
}

func newBytes(v1, v2 *imagegen.Set) int64 {
	old := map[string]bool{}
	for _, img := range v1.Images {
		for _, d := range v1.Graph[img.Root.Digest] {
			old[d.Digest.String()] = true
		}
	}
	var n int64
	seen := map[string]bool{}
	for _, img := range v2.Images {
		for _, d := range v2.Graph[img.Root.Digest] {
			if !old[d.Digest.String()] && !seen[d.Digest.String()] {
				seen[d.Digest.String()] = true
				n += d.Size
			}
		}
	}
	return n
}

func rotate(tools []string, by int) []string {
	out := append([]string{}, tools...)
	if by%2 == 1 {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// timed runs cmds one after another and sums what they cost.
func timed(cmds []*exec.Cmd, reg *regtest.Server) (sample, error) {
	var s sample
	var reg0 time.Duration
	if reg != nil {
		reg0 = reg.CPU()
	}
	// Start every timed run with no dirty pages in flight, so that no tool
	// pays for the writeback of the one before it.
	syscall.Sync()
	for _, cmd := range cmds {
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return s, err
		}
		peak := watchRSS(cmd.Process.Pid)
		err := cmd.Wait()
		s.wall += time.Since(start)
		if rss := peak(); rss > s.maxRSS {
			s.maxRSS = rss
		}
		if err != nil {
			return s, fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, tail(stderr.String()))
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			s.cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	if reg != nil {
		s.regCPU = reg.CPU() - reg0
	}
	return s, nil
}

// watchRSS polls a process's VmHWM (its own peak resident set, which unlike
// rusage's maxrss does not inherit the parent's size at exec) every 10 ms;
// the returned func stops polling and gives the highest value seen.
func watchRSS(pid int) func() int64 {
	var peak atomic.Int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	read := func() {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "VmHWM:"), "kB")), &kb)
				if kb*1024 > peak.Load() {
					peak.Store(kb * 1024)
				}
			}
		}
	}
	go func() {
		defer close(stopped)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-stopped
		return peak.Load()
	}
}

func tail(s string) string {
	if len(s) > 1500 {
		return s[len(s)-1500:]
	}
	return s
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// limits are this machine's ceilings, measured in the same run.
type limits struct {
	sha256, disk, loopback float64 // MB/s
}

func measureLimits(ctx context.Context, c config, src *regtest.Server, set *imagegen.Set) limits {
	var l limits
	buf := make([]byte, 256<<20)
	imagegenFill(buf)
	start := time.Now()
	h := sha256.New()
	for i := 0; i < 4; i++ {
		h.Write(buf)
	}
	l.sha256 = 4 * float64(len(buf)) / 1e6 / time.Since(start).Seconds()

	path := filepath.Join(c.work, "disk-probe")
	if f, err := os.Create(path); err == nil {
		start = time.Now()
		for i := 0; i < 4; i++ {
			f.Write(buf)
		}
		f.Sync()
		l.disk = 4 * float64(len(buf)) / 1e6 / time.Since(start).Seconds()
		f.Close()
		os.Remove(path)
	}

	// One GET of the largest blob from the registry, over loopback.
	var best struct {
		repo string
		d    string
		size int64
	}
	for _, img := range set.Images {
		for _, d := range set.Graph[img.Root.Digest] {
			if d.Size > best.size {
				best.repo, best.d, best.size = img.Repository, d.Digest.String(), d.Size
			}
		}
	}
	start = time.Now()
	resp, err := http.Get("http://" + src.Host + "/v2/" + best.repo + "/blobs/" + best.d)
	if err == nil {
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		l.loopback = float64(n) / 1e6 / time.Since(start).Seconds()
	}
	log("limits: sha256 %.0f MB/s (one core), disk %.0f MB/s (fdatasync), loopback HTTP %.0f MB/s", l.sha256, l.disk, l.loopback)
	return l
}

func imagegenFill(b []byte) {
	var x uint64 = 88172645463325252
	for i := 0; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for k := 0; k < 8; k++ {
			b[i+k] = byte(x >> (8 * k))
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// section writes a titled list, when it has lines.
func section(b *strings.Builder, title string, lines []string) {
	if len(lines) == 0 {
		return
	}
	b.WriteString("\n" + title + "\n\n")
	for _, line := range lines {
		b.WriteString("- " + line + "\n")
	}
}

// importCeilings is each import against the destination registry's own
// work: were it the only thing running, with every core to itself, the
// import could not take less than its CPU time divided by the cores.
func importCeilings(results []*result) []string {
	var out []string
	for _, r := range results {
		if r.tool != "ferry" || !strings.HasPrefix(r.op, "import directory") {
			continue
		}
		var wall, reg []time.Duration
		for _, s := range r.samples {
			wall, reg = append(wall, s.wall), append(reg, s.regCPU)
		}
		floor := median(reg).Seconds() / float64(runtime.NumCPU())
		out = append(out, fmt.Sprintf("%s: the registry spent %.2f CPU s, so no import can take less than %.2f s on %d cores; ferry took %.2f s, %.0f%% of that ceiling's speed.",
			strings.TrimPrefix(r.op, "import directory "), median(reg).Seconds(), floor, runtime.NumCPU(), median(wall).Seconds(), 100*floor/median(wall).Seconds()))
	}
	return out
}

// exportFloors is each export against the CPU it needed: tool and source
// registry share the cores, so a run cannot take less than their CPU time
// together over the cores. A tool near its floor can only get faster by
// doing less work.
func exportFloors(results []*result) []string {
	var out []string
	for _, r := range results {
		if !strings.HasPrefix(r.op, "export") {
			continue
		}
		var wall, cpu []time.Duration
		for _, s := range r.samples {
			wall, cpu = append(wall, s.wall), append(cpu, s.cpu+s.regCPU)
		}
		floor := median(cpu).Seconds() / float64(runtime.NumCPU())
		out = append(out, fmt.Sprintf("%s, %s: %.2f CPU s with the registry's, a floor of %.2f s; took %.2f s (%.0f%% busy).",
			r.op, r.tool, median(cpu).Seconds(), floor, median(wall).Seconds(), 100*floor/median(wall).Seconds()))
	}
	return out
}

func render(c config, l limits, results []*result, big, referrers []string) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# ferry benchmark\n\n%s, %s, %d CPUs, Go %s, host %s; corpus %s of unique layers; %d rounds, median.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), runtime.Version(), host, human(c.scale), c.rounds)
	fmt.Fprintf(&b, "Machine limits measured in the same run: sha256 %.0f MB/s (one core), sequential disk write %.0f MB/s (fdatasync), loopback HTTP GET of one blob %.0f MB/s.\n\n", l.sha256, l.disk, l.loopback)
	b.WriteString("| operation | tool | median s | MB/s | time ÷ ferry's | s until on disk | peak RSS | tool CPU s | registry CPU s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	ferryTime := map[string]time.Duration{}
	for _, r := range results {
		if r.tool == "ferry" {
			var w []time.Duration
			for _, s := range r.samples {
				w = append(w, s.wall)
			}
			ferryTime[r.op] = median(w)
		}
	}
	for _, r := range results {
		var wall, cpu, reg, onDisk []time.Duration
		var rss int64
		for _, s := range r.samples {
			wall, cpu, reg = append(wall, s.wall), append(cpu, s.cpu), append(reg, s.regCPU)
			if s.onDisk > 0 {
				onDisk = append(onDisk, s.onDisk)
			}
			if s.maxRSS > rss {
				rss = s.maxRSS
			}
		}
		w := median(wall)
		ratio := "—"
		if ft, ok := ferryTime[r.op]; ok && ft > 0 {
			ratio = fmt.Sprintf("%.2f", w.Seconds()/ft.Seconds())
		}
		regs := fmt.Sprintf("%.2f", median(reg).Seconds())
		disk := "—"
		if len(onDisk) > 0 {
			disk = fmt.Sprintf("%.2f", median(onDisk).Seconds())
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f | %.0f | %s | %s | %s | %.2f | %s |\n", r.op, r.tool, w.Seconds(), float64(r.bytes)/1e6/w.Seconds(), ratio, disk, human(rss), median(cpu).Seconds(), regs)
	}
	section(&b, "Import against the receiving registry's own CPU (its median CPU time during ferry's imports):", importCeilings(results))
	section(&b, fmt.Sprintf("Exports against the CPU they needed (tool and source registry together, over %d cores):", runtime.NumCPU()), exportFloors(results))
	section(&b, "One image with a single "+human(c.big)+" layer, through ferry:", big)
	section(&b, "What referrers cost (ferry, into distribution v3, median of the rounds):", referrers)
	b.WriteString("\n\"time ÷ ferry's\" above 1 means the tool was slower than ferry. MB/s counts the bytes of the blobs the operation had to move (for a re-import: the bundle's size, though nothing moves). Registry CPU is the source registry's for exports and the destination's for imports. \"s until on disk\" (exports) adds a sync(2) run right after the tool exits: only ferry fsyncs what it writes, so for the others that is when the bundle could be unplugged or would survive a power cut.\n")
	return b.String()
}
