package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ferry-oci/ferry/testdata/imagegen"
)

// The scale mode's peers sync many images in one run, each from a config
// file the way their users keep a mirror: regsync's `regsync once` with
// ocidir targets (one OCI layout per repository) and back, skopeo's `sync`
// from a YAML source to dir: directories and back. Each gets 8-way
// parallelism where it has a setting for it, as ferry's default --jobs.

// scaleExport pulls images from the registry at host into out.
func scaleExport(e *env, tool, host string, images []imagegen.Image, out string) ([]*exec.Cmd, error) {
	switch tool {
	case "ferry":
		list := out + ".images"
		var refs []string
		for _, img := range images {
			refs = append(refs, img.Reference(host))
		}
		if err := os.WriteFile(list, []byte(strings.Join(refs, "\n")+"\n"), 0o644); err != nil {
			return nil, err
		}
		return []*exec.Cmd{e.cmd("ferry", "-q", "export", "--images-file", list, "-o", out, "--src-plain-http")}, nil
	case "regsync":
		var steps []string
		for _, img := range images {
			steps = append(steps, regsyncStep(img.Reference(host), "ocidir://"+filepath.Join(out, img.Repository)+":"+img.Tag))
		}
		return regsyncOnce(e, out+".yaml", host, steps)
	case "skopeo":
		var b strings.Builder
		fmt.Fprintf(&b, "%s:\n  tls-verify: false\n  images:\n", host)
		tags := map[string][]string{}
		var repos []string
		for _, img := range images {
			if tags[img.Repository] == nil {
				repos = append(repos, img.Repository)
			}
			tags[img.Repository] = append(tags[img.Repository], fmt.Sprintf("%q", img.Tag))
		}
		for _, r := range repos {
			fmt.Fprintf(&b, "    %s: [%s]\n", r, strings.Join(tags[r], ", "))
		}
		if err := os.WriteFile(out+".yaml", []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		return []*exec.Cmd{e.cmd("skopeo", "--insecure-policy", "sync", "--all", "--scoped", "--src", "yaml", "--dest", "dir", out+".yaml", out)}, nil
	}
	return nil, fmt.Errorf("no scale export for %s", tool)
}

// scaleImport pushes what scaleExport wrote at in into the registry at
// host, each image at m/<repository>:<tag>.
func scaleImport(e *env, tool, in, host string, images []imagegen.Image) ([]*exec.Cmd, error) {
	switch tool {
	case "ferry":
		return []*exec.Cmd{e.cmd("ferry", "-q", "import", in, "--to", host+"/m", "--dest-plain-http")}, nil
	case "regsync":
		var steps []string
		for _, img := range images {
			steps = append(steps, regsyncStep("ocidir://"+filepath.Join(in, img.Repository)+":"+img.Tag, host+"/m/"+img.Repository+":"+img.Tag))
		}
		return regsyncOnce(e, in+"-import-"+strings.ReplaceAll(host, ":", "-")+".yaml", host, steps)
	case "skopeo":
		// --scoped put everything under one directory named for the source.
		scoped, _ := filepath.Glob(filepath.Join(in, "*"))
		if len(scoped) != 1 {
			return nil, fmt.Errorf("skopeo sync wrote %d top-level directories into %s, want 1 (the source's)", len(scoped), in)
		}
		return []*exec.Cmd{e.cmd("skopeo", "--insecure-policy", "sync", "--all", "--src", "dir", "--dest", "docker", "--dest-tls-verify=false", scoped[0], host+"/m")}, nil
	}
	return nil, fmt.Errorf("no scale import for %s", tool)
}

func regsyncStep(source, target string) string {
	return fmt.Sprintf("  - source: %s\n    target: %s\n    type: image\n", source, target)
}

// regsyncOnce writes a regsync config with steps, host over plain HTTP,
// and returns the `regsync once` that runs it.
func regsyncOnce(e *env, path, host string, steps []string) ([]*exec.Cmd, error) {
	conf := fmt.Sprintf("version: 1\ncreds:\n  - registry: %s\n    tls: disabled\ndefaults:\n  parallel: 8\n  skipDockerConfig: true\nsync:\n%s", host, strings.Join(steps, ""))
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return []*exec.Cmd{e.cmd("regsync", "once", "-c", path)}, nil
}
