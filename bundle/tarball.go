package bundle

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/klauspost/pgzip"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

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
// appearing at its final name only on Commit.
type sink interface {
	io.Writer
	Commit() error
	Abort()
}

// toTar writes the bundle as one tar stream, in one pass, straight from
// the source registries into the file(s): metadata first, then manifests,
// configs and layers, the small blobs downloaded ahead in parallel (see
// writeBlobs). Nothing is staged on disk and memory stays flat; the
// output appears only when every blob has been verified.
func (e *exporter) toTar(ctx context.Context, opts ExportOptions, gzipped bool, meta metadata) (err error) {
	// An interrupted run left its temp file or volumes (up to 4 GiB each
	// with --split-size fat32): they go before this run writes its own.
	if err := layout.RemoveStaleTemps(opts.Output); err != nil {
		return err
	}
	var out sink
	if opts.SplitSize > 0 {
		if out, err = layout.NewSplitWriter(opts.Output, opts.SplitSize); err != nil {
			return err
		}
	} else if out, err = layout.CreateAtomic(opts.Output, 0o444, true); err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			out.Abort()
		}
	}()
	var w io.Writer = out
	var gz *pgzip.Writer
	if gzipped {
		gz = pgzip.NewWriter(out)
		w = gz
	}
	tw := layout.NewTarWriter(w, e.created)
	if err := e.writeTarHead(tw, meta); err != nil {
		return fmt.Errorf("writing %s: %w", opts.Output, err)
	}
	if err := e.writeBlobs(ctx, tw, tarOrder(e.plan, e.graph)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return err
		}
	}
	if err := out.Commit(); err != nil {
		return fmt.Errorf("writing %s: %w", opts.Output, err)
	}
	committed = true
	return nil
}

// writeTarHead writes oci-layout, index.json, ferry.json and its
// signature, the entries a tarball starts with: a stream import checks the
// signature before it reads any blob.
func (e *exporter) writeTarHead(tw *layout.TarWriter, meta metadata) error {
	layoutFile, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := tw.WriteFile(layout.FileOCILayout, layoutFile); err != nil {
		return err
	}
	// index.json and ferry.json are encoded as they are written, to the
	// sizes write counted.
	if err := tw.WriteFileFunc(layout.FileIndex, e.indexSize, e.encodeIndex); err != nil {
		return err
	}
	if err := tw.WriteFileFunc(layout.FileBundle, meta.size, meta.write); err != nil {
		return err
	}
	if meta.signature != nil {
		return tw.WriteFile(layout.FileSignature, meta.signature)
	}
	return nil
}

// tarOrder lists the included blobs as DESIGN.md orders a tarball:
// manifests and indexes, then configs, then layers; by digest within each.
func tarOrder(plan *Plan, graph *layout.Graph) []*PlannedBlob {
	rank := func(b *PlannedBlob) int {
		switch {
		case b.Manifest():
			return 0
		case graph.IsConfig(b.Desc.Digest):
			return 1
		}
		return 2
	}
	var out []*PlannedBlob // into plan.Blobs: no copy of thousands of entries
	for i := range plan.Blobs {
		if plan.Blobs[i].Included {
			out = append(out, &plan.Blobs[i])
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}
