package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"oras.land/oras-go/v2/registry/remote"

	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

type env struct {
	config
	src    *regtest.Server
	v1, v2 *imagegen.Set
	text   *imagegen.Set // v1's shape with compressible layers
	v2New  int64
	// prepared holds each tool's own v1 and v2 directory bundles.
	prepared map[string][2]string
}

// op is one operation measured for every tool.
type op struct {
	name  string
	kind  string // export-dir, export-tar, import, reimport, delta
	dest  regtest.Kind
	bytes int64
}

func (e *env) ops() []op {
	size := unique(e.v1)
	out := []op{
		{name: "export → directory", kind: "export-dir", bytes: size},
		{name: "export → tarball", kind: "export-tar", bytes: size},
		{name: "export → directory (text layers)", kind: "export-dir-text", bytes: unique(e.text)},
	}
	for _, k := range e.servers {
		out = append(out,
			op{name: "import directory (" + string(k) + ")", kind: "import", dest: k, bytes: size},
			op{name: "re-import, all present (" + string(k) + ")", kind: "reimport", dest: k, bytes: size},
			op{name: "v1 → v2 import (" + string(k) + ")", kind: "delta", dest: k, bytes: e.v2New},
		)
	}
	return out
}

func (e *env) available() []string {
	var out []string
	for _, t := range e.tools {
		if t == "ferry" || e.bin(t) != "" {
			out = append(out, t)
		} else {
			log("%s is not installed; left out (make bench installs it)", t)
		}
	}
	return out
}

// bin finds a peer: the pinned copies in -peers first, then PATH.
func (e *env) bin(tool string) string {
	if tool == "ferry" {
		return e.ferry
	}
	if p := filepath.Join(e.peers, tool); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath(tool); err == nil {
		return p
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func (e *env) cmd(tool string, args ...string) *exec.Cmd {
	c := exec.Command(e.bin(tool), args...)
	// regctl keeps its registry settings in a config file of its own.
	c.Env = append(os.Environ(), "REGCTL_CONFIG="+filepath.Join(e.work, "regctl.json"), "HOME="+e.work)
	return c
}

// tagName is a layout tag for an image: repository and tag, flattened.
func tagName(img imagegen.Image) string {
	return strings.ReplaceAll(img.Repository, "/", "-") + "-" + img.Tag
}

func refs(set *imagegen.Set, host string) []string {
	var out []string
	for _, img := range set.Images {
		out = append(out, img.Reference(host))
	}
	return out
}

// exportCmds pulls every image of set from the source into out.
func (e *env) exportCmds(tool string, set *imagegen.Set, out string, tarball bool, baseline string) []*exec.Cmd {
	host := e.src.Host
	var cmds []*exec.Cmd
	switch tool {
	case "ferry":
		target := out
		if tarball {
			target += ".tar"
		}
		args := append([]string{"-q", "export", "-o", target, "--src-plain-http"}, refs(set, host)...)
		if baseline != "" {
			args = append(args, "--baseline", baseline)
		}
		cmds = append(cmds, e.cmd(tool, args...))
	case "skopeo":
		for i, img := range set.Images {
			dest := "oci:" + out + ":" + tagName(img)
			if tarball {
				dest = fmt.Sprintf("oci-archive:%s-%d.tar:%s", out, i, tagName(img))
			}
			cmds = append(cmds, e.cmd(tool, "copy", "--all", "--insecure-policy", "--src-tls-verify=false", "docker://"+img.Reference(host), dest))
		}
	case "crane":
		if tarball {
			return nil // crane's tarballs are docker-save format: one platform, no index
		}
		cmds = append(cmds, e.cmd(tool, append(append([]string{"pull", "--insecure", "--format=oci"}, refs(set, host)...), out)...))
	case "regctl":
		for i, img := range set.Images {
			if tarball {
				cmds = append(cmds, e.cmd(tool, "image", "export", img.Reference(host), fmt.Sprintf("%s-%d.tar", out, i)))
			} else {
				cmds = append(cmds, e.cmd(tool, "image", "copy", img.Reference(host), "ocidir://"+out+":"+tagName(img)))
			}
		}
	case "oras":
		if tarball {
			return nil // oras writes layouts, not tarballs
		}
		for _, img := range set.Images {
			cmds = append(cmds, e.cmd(tool, "copy", "--from-plain-http", img.Reference(host), "--to-oci-layout", out+":"+tagName(img)))
		}
	}
	return cmds
}

// importCmds pushes a tool's own directory bundle of set into dst.
func (e *env) importCmds(tool string, set *imagegen.Set, dir string, dst *regtest.Server) []*exec.Cmd {
	var cmds []*exec.Cmd
	to := dst.Host + "/bench"
	switch tool {
	case "ferry":
		cmds = append(cmds, e.cmd(tool, "-q", "import", dir, "--to", to, "--dest-plain-http"))
	case "skopeo":
		for _, img := range set.Images {
			cmds = append(cmds, e.cmd(tool, "copy", "--all", "--insecure-policy", "--dest-tls-verify=false", "oci:"+dir+":"+tagName(img), "docker://"+to+"/"+img.Repository+":"+img.Tag))
		}
	case "crane":
		// crane pushes a layout of many images only as one index in one
		// repository. To end where every other tool ends, each image at
		// its own name, crane then copies each image out of that index by
		// digest; within one registry the copy mounts the blobs, so each
		// is still sent once. That is the quickest way crane does the job.
		all := to + "/all"
		cmds = append(cmds, e.cmd(tool, "push", "--insecure", "--index", dir, all+":layout"))
		for _, img := range set.Images {
			cmds = append(cmds, e.cmd(tool, "copy", "--insecure", all+"@"+img.Root.Digest.String(), to+"/"+img.Repository+":"+img.Tag))
		}
	case "regctl":
		for _, img := range set.Images {
			cmds = append(cmds, e.cmd(tool, "image", "copy", "ocidir://"+dir+":"+tagName(img), to+"/"+img.Repository+":"+img.Tag))
		}
	case "oras":
		for _, img := range set.Images {
			cmds = append(cmds, e.cmd(tool, "copy", "--from-oci-layout", dir+":"+tagName(img), "--to-plain-http", to+"/"+img.Repository+":"+img.Tag))
		}
	}
	return cmds
}

// regctlPlain tells regctl a registry speaks plain HTTP.
func (e *env) regctlPlain(host string) error {
	if e.bin("regctl") == "" {
		return nil
	}
	_, err := timed([]*exec.Cmd{e.cmd("regctl", "registry", "set", "--tls", "disabled", host)}, nil)
	return err
}

// prepare exports, untimed, each tool's own v1 and v2 directory bundles:
// what each tool's imports start from. ferry's v2 bundle is a delta on v1.
func (e *env) prepare(ctx context.Context) error {
	if err := e.regctlPlain(e.src.Host); err != nil {
		return err
	}
	e.prepared = map[string][2]string{}
	for _, tool := range e.available() {
		v1 := filepath.Join(e.work, "prep", tool+"-v1")
		v2 := filepath.Join(e.work, "prep", tool+"-v2")
		if _, err := timed(e.exportCmds(tool, e.v1, v1, false, ""), nil); err != nil {
			return err
		}
		baseline := ""
		if tool == "ferry" {
			baseline = filepath.Join(v1, layout.FileBundle)
		}
		if _, err := timed(e.exportCmds(tool, e.v2, v2, false, baseline), nil); err != nil {
			return err
		}
		e.prepared[tool] = [2]string{v1, v2}
	}
	return nil
}

// measure runs one operation for one tool and reports whether the tool
// supports it.
func (e *env) measure(ctx context.Context, o op, tool string, round int) (sample, bool, error) {
	out := filepath.Join(e.work, fmt.Sprintf("run-%d-%s-%s", round, o.kind, tool))
	defer os.RemoveAll(out)
	defer func() {
		matches, _ := filepath.Glob(out + "*")
		for _, m := range matches {
			os.RemoveAll(m)
		}
	}()
	switch o.kind {
	case "export-dir", "export-tar", "export-dir-text":
		set := e.v1
		if o.kind == "export-dir-text" {
			set = e.text
		}
		cmds := e.exportCmds(tool, set, out, o.kind == "export-tar", "")
		if cmds == nil {
			return sample{}, false, nil
		}
		warm(e.src.Dir)
		s, err := timed(cmds, e.src)
		if err == nil {
			start := time.Now()
			syscall.Sync()
			s.onDisk = s.wall + time.Since(start)
		}
		return s, true, err
	}
	dst, err := regtest.Start(ctx, o.dest, out+"-registry", regtest.Options{})
	if err != nil {
		return sample{}, false, err
	}
	defer dst.Stop()
	if err := e.regctlPlain(dst.Host); err != nil {
		return sample{}, false, err
	}
	dirs := e.prepared[tool]
	switch o.kind {
	case "import":
		warm(dirs[0])
		s, err := timed(e.importCmds(tool, e.v1, dirs[0], dst), dst)
		return s, true, err
	case "reimport":
		if _, err := timed(e.importCmds(tool, e.v1, dirs[0], dst), nil); err != nil {
			return sample{}, false, err
		}
		warm(dirs[0])
		s, err := timed(e.importCmds(tool, e.v1, dirs[0], dst), dst)
		return s, true, err
	case "delta":
		if _, err := timed(e.importCmds(tool, e.v1, dirs[0], dst), nil); err != nil {
			return sample{}, false, err
		}
		warm(dirs[1])
		s, err := timed(e.importCmds(tool, e.v2, dirs[1], dst), dst)
		return s, true, err
	}
	return sample{}, false, fmt.Errorf("unknown operation %q", o.kind)
}

// bigBlob pushes one image with a single huge layer and measures ferry's
// peak memory exporting it to a tarball and importing that tarball.
func (e *env) bigBlob(ctx context.Context) ([]string, error) {
	repo, err := remote.NewRepository(e.src.Host + "/big/blob")
	if err != nil {
		return nil, err
	}
	repo.PlainHTTP = true
	log("pushing a %s layer", human(e.big))
	if _, err := imagegen.PushBig(ctx, repo, "1", e.big); err != nil {
		return nil, err
	}
	out := filepath.Join(e.work, "big.tar")
	defer os.Remove(out)
	exp, err := timed([]*exec.Cmd{e.cmd("ferry", "-q", "export", e.src.Host+"/big/blob:1", "-o", out, "--src-plain-http")}, e.src)
	if err != nil {
		return nil, err
	}
	dst, err := regtest.Start(ctx, regtest.Distribution, filepath.Join(e.work, "big-dst"), regtest.Options{})
	if err != nil {
		return nil, err
	}
	defer dst.Stop()
	imp, err := timed([]*exec.Cmd{e.cmd("ferry", "-q", "import", out, "--to", dst.Host, "--dest-plain-http")}, dst)
	if err != nil {
		return nil, err
	}
	line := func(what string, s sample) string {
		return fmt.Sprintf("%s: %.1f s, %.0f MB/s, peak RSS %s", what, s.wall.Seconds(), float64(e.big)/1e6/s.wall.Seconds(), human(s.maxRSS))
	}
	log("%s", line("big blob export → tarball", exp))
	log("%s", line("big blob import from tarball", imp))
	return []string{line("export → tarball", exp), line("import from the tarball", imp)}, nil
}

// warm reads every file under dir, untimed, so that each tool starts with
// its input in the page cache. Without it, whichever tool runs first in a
// round reads from disk what the imports before it pushed out of memory.
func warm(dir string) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if f, err := os.Open(path); err == nil {
			io.Copy(io.Discard, f)
			f.Close()
		}
		return nil
	})
}
