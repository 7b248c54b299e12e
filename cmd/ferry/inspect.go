package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-oci/ferry/bundle"
)

func newInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect BUNDLE",
		Short: "Show a bundle's images, platforms, blob count and bytes",
		Long: `Show what a bundle carries: its images with their digests and platforms,
the number of blobs and bytes, and, for a delta bundle, what it omits.
Manifests are read and verified; layers are not hashed (use verify).`,
		Example: `  ferry inspect ./bundle`,
		Args:    exactArgs(1, "BUNDLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ins, err := bundle.Inspect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if m := ins.Manifest; m != nil {
				fmt.Fprintf(g.out, "bundle %s, created %s by %s\n", args[0], m.Created.Format("2006-01-02 15:04:05Z07:00"), m.Creator)
				if len(m.Baselines) > 0 {
					fmt.Fprintf(g.out, "delta against %d baseline(s)\n", len(m.Baselines))
				}
			} else {
				fmt.Fprintf(g.out, "plain OCI layout %s (no ferry.json)\n", args[0])
			}
			fmt.Fprintf(g.out, "%d image(s):\n", len(ins.Images))
			for _, img := range ins.Images {
				fmt.Fprintf(g.out, "  %s\n    %s  %s  %d blobs, %s\n", img.Reference, img.Digest, strings.Join(img.Platforms, ", "), img.Blobs, bundle.HumanBytes(img.Bytes))
				if m := ins.Manifest; m != nil {
					for _, si := range m.Images {
						if si.Reference == img.Reference && si.Original != "" {
							fmt.Fprintf(g.out, "    narrowed to %s from the index %s (its signatures do not apply)\n", strings.Join(si.Platforms, ", "), si.Original)
						}
					}
				}
				for _, r := range img.Referrers {
					fmt.Fprintf(g.out, "    %-20s %s  (refers to %s)\n", bundle.Kind(r), r.Descriptor.Digest, r.Subject)
				}
			}
			fmt.Fprintf(g.out, "blobs: %d distinct, %s; in this bundle: %d, %s", ins.Blobs, bundle.HumanBytes(ins.Bytes), ins.Included, bundle.HumanBytes(ins.IncludedBytes))
			if ins.Omitted > 0 {
				fmt.Fprintf(g.out, "; omitted: %d", ins.Omitted)
			}
			fmt.Fprintln(g.out)
			return nil
		},
	}
}
