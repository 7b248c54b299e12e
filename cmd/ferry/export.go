package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/layout"
)

// exportFlags are export's flags, and what RunE makes of them.
type exportFlags struct {
	opts       bundle.ExportOptions
	imagesFile []string
	splitSize  string
	signKey    string
	platforms  []string
	mode       string
	config     string
}

func newExportCmd(g *globals) *cobra.Command {
	f := &exportFlags{}
	cmd := &cobra.Command{
		Use:     "export [REFERENCE...] -o BUNDLE",
		Short:   "Pull images from registries into a bundle",
		Long:    exportLong,
		Example: exportExamples,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.options(g, args); err != nil {
				return err
			}
			res, err := bundle.Export(cmd.Context(), f.opts)
			if err != nil && cmd.Context().Err() != nil {
				return fmt.Errorf("%w: export interrupted; the bundle is incomplete: run the same export again to resume (blobs already in a directory are verified and reused; a tarball starts over)", err)
			}
			if err != nil {
				return err
			}
			printExport(g, f.opts, res)
			return nil
		},
	}
	opts := &f.opts
	cmd.Flags().StringArrayVar(&f.imagesFile, "images-file", nil, "file of references, one a line; # starts a comment (repeatable: the files merge)")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "", "bundle to write: a directory, or NAME.tar / NAME.tar.gz for a tarball")
	cmd.Flags().StringVar(&f.splitSize, "split-size", "", "split the tarball into volumes of at most this size (4G, 700M, or fat32 for 4 GiB - 1 byte)")
	cmd.Flags().StringArrayVar(&opts.Baselines, "baseline", nil, "ferry.json of an earlier bundle, or an inventory file: omit every blob it lists (repeatable)")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "resolve and plan only: print what would travel")
	cmd.Flags().StringVar(&f.config, "config", "", "mirror configuration in skopeo sync's YAML format (with ferry's extra keys: platforms, exclude, newest, all-tags, referrers)")
	cmd.Flags().StringArrayVar(&f.platforms, "platform", nil, "carry only these platforms of multi-arch images: os/arch[/variant], repeatable or comma-separated (default: all)")
	cmd.Flags().StringVar(&f.mode, "platform-mode", string(bundle.NewIndex), "what a narrowed multi-arch image becomes: new-index (a new index of the chosen platforms: new digest, imports anywhere) or single (the one chosen manifest under the tag)")
	cmd.Flags().StringVar(&f.signKey, "sign-key", "", "sign the bundle (ferry.json.sig) with this key: cosign.key (password in COSIGN_PASSWORD or asked for) or a PEM ECDSA P-256 / Ed25519 private key")
	cmd.Flags().BoolVar(&opts.IncludeForeign, "include-foreign", false, "carry foreign and non-distributable layers too (Windows base layers), from the source registry or else their URLs; by default only their manifests travel")
	cmd.Flags().BoolVar(&opts.NoReferrers, "no-referrers", false, "leave out the signatures, attestations, SBOMs and other artifacts that refer to the images")
	registryFlags(cmd, "src", &opts.Source)
	return cmd
}

// options turns the flags and arguments into export's options; what does
// not parse is a usage error.
func (f *exportFlags) options(g *globals, args []string) error {
	opts := &f.opts
	opts.References = args
	for _, file := range f.imagesFile {
		refs, err := readImagesFile(file)
		if err != nil {
			return err
		}
		opts.References = append(opts.References, refs...)
	}
	if f.config != "" {
		file, err := os.Open(f.config)
		if err != nil {
			return usagef("reading the mirror configuration: %v", err)
		}
		opts.Config, err = bundle.ReadMirrorConfig(file, f.config)
		file.Close()
		if err != nil {
			return usageError{err}
		}
	}
	if len(opts.References) == 0 && opts.Config == nil {
		return usagef("no images to export: name references, give --images-file, or --config")
	}
	if opts.Output == "" {
		return usagef("no output: give -o DIRECTORY, or -o NAME.tar for a tarball")
	}
	if f.splitSize != "" {
		n, err := layout.ParseSize(f.splitSize)
		if err != nil {
			return usagef("--split-size: %v", err)
		}
		opts.SplitSize = n
	}
	var err error
	if opts.Platforms, err = bundle.ParsePlatforms(f.platforms); err != nil {
		return usageError{err}
	}
	switch bundle.PlatformMode(f.mode) {
	case bundle.NewIndex, bundle.SingleManifest:
		opts.PlatformMode = bundle.PlatformMode(f.mode)
	default:
		return usagef("--platform-mode %q: want new-index or single", f.mode)
	}
	if f.signKey != "" {
		if opts.SignKey, err = loadSigningKey(g, f.signKey); err != nil {
			return err
		}
	}
	opts.Jobs, opts.Progress, opts.Creator = g.jobs, newProgress(g), "ferry "+version
	return nil
}

// printSelection says what a platform selection changed in an image.
func printSelection(g *globals, img bundle.PlannedImage) {
	sel := img.Selection
	if sel == nil {
		return
	}
	fmt.Fprintf(g.out, "    platforms: %s carried, %s left out; the index %s becomes %s (%s)\n",
		strings.Join(sel.Kept, ", "), strings.Join(sel.Dropped, ", "), sel.Original.Digest, img.Root.Digest, img.Root.MediaType)
	if sel.Inapplicable > 0 {
		fmt.Fprintf(g.out, "    %d signature(s), attestation(s) or SBOM(s) of the original index no longer apply and stay behind; those of the platforms carried travel\n", sel.Inapplicable)
	}
}

func readImagesFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("reading images file: %v", err)
	}
	defer f.Close()
	refs, err := bundle.ReadImagesFile(f, path)
	if err != nil {
		return nil, usageError{err}
	}
	return refs, nil
}

func printExport(g *globals, opts bundle.ExportOptions, res *bundle.ExportResult) {
	s := res.Summary
	if opts.DryRun {
		for _, e := range res.Entries {
			fmt.Fprintf(g.out, "entry %s: %d tag(s) match: %s\n", e.Repository, len(e.Matched), strings.Join(e.Matched, " "))
			var ex []string
			for t := range e.Excluded {
				ex = append(ex, t)
			}
			sort.Strings(ex)
			for _, t := range ex {
				fmt.Fprintf(g.out, "  excluded %s: %s\n", t, e.Excluded[t])
			}
		}
		fmt.Fprintf(g.out, "plan (dry run, nothing written):\n")
		referrers := res.Plan.ReferrersByImage()
		for i, img := range res.Plan.Images {
			fmt.Fprintf(g.out, "  image %s  %s\n", img.Source, img.Root.Digest)
			printSelection(g, img)
			for _, r := range referrers[i] {
				fmt.Fprintf(g.out, "    %-20s %s  (refers to %s)\n", bundle.Kind(r), r.Descriptor.Digest, r.Subject)
			}
		}
		for _, b := range res.Plan.Blobs {
			what := "carry"
			if !b.Included {
				what = "omit (baseline)"
			}
			fmt.Fprintf(g.out, "  %-16s %s  %10s  %s\n", what, b.Desc.Digest, bundle.HumanBytes(b.Desc.Size), b.Desc.MediaType)
		}
		inc, n := res.Plan.IncludedBytes()
		fmt.Fprintf(g.out, "would carry %d of %d blobs, %s; omit %d, %s\n", n, s.Blobs, bundle.HumanBytes(inc), s.Omitted, bundle.HumanBytes(s.OmittedBytes))
		return
	}
	fmt.Fprintf(g.out, "exported %d image(s) to %s\n", s.Images, opts.Output)
	for _, img := range res.Plan.Images {
		if img.Selection != nil {
			fmt.Fprintf(g.out, "  image %s:\n", img.Source)
			printSelection(g, img)
		}
	}
	fmt.Fprintf(g.out, "  referrers: %d (signatures, attestations, SBOMs, other artifacts)\n", s.Referrers)
	fmt.Fprintf(g.out, "  blobs:     %d (%s)\n", s.Blobs, bundle.HumanBytes(s.Bytes))
	fmt.Fprintf(g.out, "  fetched:   %d (%s)\n", s.Transferred, bundle.HumanBytes(s.TransferredBytes))
	fmt.Fprintf(g.out, "  reused:    %d (%s) already in the bundle\n", s.Skipped, bundle.HumanBytes(s.SkippedBytes))
	if s.Omitted > 0 {
		fmt.Fprintf(g.out, "  omitted:   %d (%s) per baseline\n", s.Omitted, bundle.HumanBytes(s.OmittedBytes))
	}
	if s.Foreign > 0 {
		fmt.Fprintf(g.out, "  foreign:   %d (%s) foreign or non-distributable layer(s) left out; --include-foreign carries them\n", s.Foreign, bundle.HumanBytes(s.ForeignBytes))
	}
	if opts.SignKey != nil {
		fmt.Fprintf(g.out, "  signed:    ferry.json.sig (check it with ferry verify --key, or cosign verify-blob)\n")
	}
	fmt.Fprintf(g.out, "  time:      %s (%s/s)\n", s.Duration.Round(1e6), bundle.HumanBytes(int64(s.Throughput())))
}

const exportLong = `Pull images from registries into a bundle: an OCI image layout, as a
directory or, when the output ends in .tar or .tar.gz, as one tarball written
in a single pass straight from the registries (nothing staged on disk).
--split-size cuts the tarball into volumes for FAT32 sticks, with a
sha256sums file; cat NAME.tar.0* > NAME.tar gives back the whole tarball.

Every reference is resolved; every platform of a multi-arch image, every
config and layer is written once, verified as it streams in. What refers to
the images travels with them: cosign signatures, attestations and SBOMs
(its sha256-<hex>.sig/.att/.sbom tags), OCI 1.1 referrers (the referrers
API, or its sha256-<hex> index where a registry has no API) such as notation
signatures, and what refers to those; --no-referrers leaves them out. Layers are copied
as they are, never decompressed or recompressed, so digests and signatures
arrive unchanged. Re-running an interrupted export into the same directory
re-uses (after verifying) the blobs already there. index.json and ferry.json
are written last: a bundle is complete when they are there.`

const exportExamples = `  ferry export docker.io/library/alpine:3.20 quay.io/org/app@sha256:… -o ./bundle
  ferry export --images-file images.txt -o ./bundle
  ferry export --images-file images.txt -o bundle.tar
  ferry export --images-file images.txt -o bundle.tar.gz        # whole-bundle gzip, in parallel
  ferry export --images-file images.txt -o bundle.tar --split-size fat32
  ferry export --images-file images.txt -o ./bundle --dry-run
  ferry export --images-file images.txt --baseline previous/ferry.json -o ./delta
  ferry export … --baseline a.json --baseline b.json -o ./delta   # baselines merge
  COSIGN_PASSWORD=… ferry export --images-file images.txt -o bundle.tar --sign-key cosign.key
  ferry export --images-file images.txt --platform linux/amd64 -o ./bundle`
