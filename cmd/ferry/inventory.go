package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/delta"
)

func newInventoryCmd(g *globals) *cobra.Command {
	var (
		output     string
		repos      []string
		imagesFile []string
		reg        registry.Options
	)
	cmd := &cobra.Command{
		Use:   "inventory REGISTRY[/PREFIX] -o FILE",
		Short: "List every blob a registry holds, as a baseline for delta exports",
		Long: `Ask the air-gapped registry what it holds and write it as a baseline.

Lists the repositories below PREFIX (through _catalog, or the ones named with
--repos or --images-file when the catalog is not allowed, as on Harbor for
non-admins), their tags and manifests, and writes every blob digest with the
repositories it lives in. Paths are written in source form, with PREFIX
stripped, so the file can be carried out and used directly:

  ferry export --images-file images.txt --baseline FILE -o delta`,
		Example: `  ferry inventory harbor.internal/mirror -o baseline.json
  ferry inventory harbor.internal/mirror --repos library/alpine,team/app -o baseline.json
  ferry inventory harbor.internal/mirror --images-file images.txt -o baseline.json`,
		Args: exactArgs(1, "REGISTRY[/PREFIX]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return usagef("no output: give -o FILE")
			}
			dest, err := bundle.ParseDestination(args[0])
			if err != nil {
				return err
			}
			for _, f := range imagesFile {
				refs, err := readImagesFile(f)
				if err != nil {
					return err
				}
				for _, s := range refs {
					r, _ := bundle.ParseReference(s)
					repos = append(repos, r.Repository)
				}
			}
			prog := newProgress(g)
			if prog != nil {
				reg.Log = prog.Logf
			}
			opts := delta.InventoryOptions{Registry: dest.Registry, Client: reg, Prefix: dest.Prefix, Repositories: dedupe(repos), Jobs: g.jobs}
			if prog != nil {
				opts.Progress = prog
			}
			m, err := delta.WriteInventory(cmd.Context(), output, opts)
			if err != nil {
				return err
			}
			var bytes int64
			for _, b := range m.Blobs {
				bytes += b.Size
			}
			fmt.Fprintf(g.out, "inventory of %s: %d image tag(s), %d referrer(s), %d blob(s), %s; written to %s\n", args[0], len(m.Images), len(m.Referrers), len(m.Blobs), bundle.HumanBytes(bytes), output)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "baseline file to write")
	cmd.Flags().StringSliceVar(&repos, "repos", nil, "repositories to list, in source form (library/alpine), instead of _catalog")
	cmd.Flags().StringArrayVar(&imagesFile, "images-file", nil, "list the repositories of these references instead of _catalog (repeatable: the files merge)")
	registryFlags(cmd, "dest", &reg)
	return cmd
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		s = strings.Trim(s, "/")
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
