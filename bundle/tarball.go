package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/pgzip"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/layout"
)

type form int

const (
	formDir form = iota
	formTar
	formTarGz
)

// outputForm is chosen by the output's name: .tar, .tar.gz/.tgz, or a
// split size; anything else is a directory.
func outputForm(opts ExportOptions) form {
	name := strings.ToLower(opts.Output)
	switch {
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		return formTarGz
	case strings.HasSuffix(name, ".tar"), opts.SplitSize > 0:
		return formTar
	}
	return formDir
}

// sink is where a tarball's bytes go: one file or a split set, each
// appearing at its final name only on commit.
type sink interface {
	io.Writer
	commit() error
	abort()
}

type fileSink struct {
	f     *os.File
	w     *layout.SyncBehind
	final string
}

func newFileSink(path string) (*fileSink, error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, ".ferry-tmp-"+name+"-*")
	if err != nil {
		return nil, err
	}
	return &fileSink{f: f, w: layout.NewSyncBehind(f), final: path}, nil
}

func (s *fileSink) Write(p []byte) (int, error) { return s.w.Write(p) }

func (s *fileSink) commit() error {
	if err := s.w.Sync(); err != nil {
		s.abort()
		return err
	}
	if err := s.f.Close(); err != nil {
		s.abort()
		return err
	}
	if err := os.Chmod(s.f.Name(), 0o444); err != nil {
		s.abort()
		return err
	}
	if err := os.Rename(s.f.Name(), s.final); err != nil {
		s.abort()
		return err
	}
	return nil
}

func (s *fileSink) abort() {
	s.f.Close()
	os.Remove(s.f.Name())
}

type splitSink struct{ *layout.SplitWriter }

func (s splitSink) commit() error { return s.Commit() }
func (s splitSink) abort()        { s.Abort() }

// exportTar writes the bundle as one tar stream, in one pass, straight from
// the source registries into the file(s): metadata first, then manifests,
// configs and layers. Nothing is staged on disk and memory stays flat; the
// output appears only when every blob has been verified.
func exportTar(ctx context.Context, c *registry.Client, graph *layout.Graph, plan *Plan, meta *spec.Manifest, opts ExportOptions, f form, prog Progress, sum *Summary) (err error) {
	var out sink
	if opts.SplitSize > 0 {
		sw, err := layout.NewSplitWriter(opts.Output, opts.SplitSize)
		if err != nil {
			return err
		}
		out = splitSink{sw}
	} else if out, err = newFileSink(opts.Output); err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			out.abort()
		}
	}()
	var w io.Writer = out
	var gz *pgzip.Writer
	if f == formTarGz {
		gz = pgzip.NewWriter(out)
		w = gz
	}
	tw := layout.NewTarWriter(w, meta.Created)

	layoutFile, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	index, err := layout.MarshalIndex(plan.index())
	if err != nil {
		return err
	}
	ferry, err := meta.Marshal()
	if err != nil {
		return err
	}
	for _, file := range []struct {
		name string
		data []byte
	}{{layout.FileOCILayout, layoutFile}, {layout.FileIndex, index}, {layout.FileBundle, ferry}} {
		if err := tw.WriteFile(file.name, file.data); err != nil {
			return fmt.Errorf("writing %s: %w", opts.Output, err)
		}
	}
	for _, b := range tarOrder(plan, graph) {
		if data, ok := graph.Manifest(b.Desc.Digest); ok {
			if err := tw.WriteBlob(ctx, b.Desc, bytes.NewReader(data)); err != nil {
				return err
			}
			prog.Add(b.Desc.Size)
		} else if err := streamBlob(ctx, c, tw, b, prog); err != nil {
			return err
		}
		sum.Transferred++
		sum.TransferredBytes += b.Desc.Size
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return err
		}
	}
	if err := out.commit(); err != nil {
		return fmt.Errorf("writing %s: %w", opts.Output, err)
	}
	committed = true
	return nil
}

func streamBlob(ctx context.Context, c *registry.Client, tw *layout.TarWriter, b PlannedBlob, prog Progress) error {
	rc, from, err := openSource(ctx, c, b)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := tw.WriteBlob(ctx, b.Desc, countingReader{rc, prog}); err != nil {
		return c.Wrap(registry.OpFetchBlob, b.Desc.Digest.String()+" from "+from, err)
	}
	return nil
}

// tarOrder lists the included blobs as DESIGN.md orders a tarball:
// manifests and indexes, then configs, then layers; by digest within each.
func tarOrder(plan *Plan, graph *layout.Graph) []PlannedBlob {
	rank := func(b PlannedBlob) int {
		switch {
		case b.Manifest():
			return 0
		case graph.IsConfig(b.Desc.Digest):
			return 1
		}
		return 2
	}
	var out []PlannedBlob
	for _, b := range plan.Blobs {
		if b.Included {
			out = append(out, b)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}
