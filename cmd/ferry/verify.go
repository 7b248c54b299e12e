package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/verify"
)

func newVerifyCmd(g *globals) *cobra.Command {
	var against bundle.ImportOptions
	var keys []string
	cmd := &cobra.Command{
		Use:     "verify BUNDLE",
		Aliases: []string{"check"},
		Short:   "Check a bundle offline: structure, every digest and size, every reference",
		Long:    verifyLong,
		Example: verifyExamples,
		Args:    exactArgs(1, "BUNDLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := loadPublicKeys(keys)
			if err != nil {
				return err
			}
			if against.To != "" {
				against.VerifyKeys = pub
				return verifyAgainst(cmd, g, args[0], against)
			}
			opts := verify.Options{Jobs: g.jobs, Keys: pub}
			if prog := newProgress(g); prog != nil {
				opts.Progress = prog
			}
			rep, err := verify.Path(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			kind := "ferry bundle"
			switch {
			case !rep.HasManifestFile:
				kind = "plain OCI layout (no ferry.json)"
			case rep.Manifest == nil:
				kind = "ferry bundle whose ferry.json cannot be read"
			}
			images, referrers := 0, 0
			for _, img := range rep.Images {
				if img.Subject != "" {
					referrers++
				} else {
					images++
				}
			}
			fmt.Fprintf(g.out, "%s: %s, %d image(s), %d referrer(s), %d blob(s) hashed (%s)", args[0], kind, images, referrers, rep.Blobs, bundle.HumanBytes(rep.Bytes))
			if rep.Omitted > 0 {
				fmt.Fprintf(g.out, ", %d omitted (%s)", rep.Omitted, bundle.HumanBytes(rep.OmittedBytes))
			}
			switch {
			case rep.SignedBy >= 0:
				fmt.Fprintf(g.out, "; signed, verified with %s", keys[rep.SignedBy])
			case rep.Signed() && len(keys) == 0:
				fmt.Fprintf(g.out, "; signed (give --key to check the signature)")
			case len(keys) == 0:
				fmt.Fprintf(g.out, "; not signed")
			}
			fmt.Fprintln(g.out)
			if err := rep.Err(); err != nil {
				fmt.Fprintf(g.out, "FAILED: %d problem(s), listed on standard error\n", len(rep.Problems))
				return err
			}
			fmt.Fprintln(g.out, "OK")
			return nil
		},
	}
	cmd.Flags().StringVar(&against.To, "against", "", "also check the destination REGISTRY[/PREFIX] holds what the bundle omits")
	cmd.Flags().BoolVar(&against.KeepHost, "keep-host", false, "keep each source registry's host in the path under the prefix (docker.io/x/app:1 → PREFIX/docker.io/x/app:1), so the same path on two registries stays apart")
	cmd.Flags().StringArrayVar(&keys, "key", nil, "require the bundle to be signed by this public key (cosign.pub, or PEM ECDSA P-256 / Ed25519); repeatable: any of them")
	registryFlags(cmd, "dest", &against.Dest)
	return cmd
}

// verifyAgainst is import's verification and planning, with nothing pushed.
func verifyAgainst(cmd *cobra.Command, g *globals, path string, opts bundle.ImportOptions) error {
	opts.Bundle, opts.DryRun = path, true
	opts.Jobs, opts.Progress = g.jobs, newProgress(g)
	res, err := bundle.Import(cmd.Context(), opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.out, "%s against %s: bundle verified; %d image(s); an import would:\n", path, opts.To, res.Summary.Images)
	printCounts(g, res.Summary, "send", "are")
	fmt.Fprintln(g.out, "OK")
	return nil
}

const verifyLong = `Check a bundle offline: a directory, a .tar or .tar.gz file (compression is
detected from the content), a split set (name any volume), or - for standard
input. A tarball is read once, front to back.

Checks the layout's structure, hashes every included blob against its digest
and size, checks that every blob a manifest references is either in the bundle
or listed as omitted in ferry.json, and that ferry.json agrees with
index.json. Every problem is listed with the digest, the file and the images
it breaks.

With --against REGISTRY[/PREFIX], it also asks the destination, without
pushing anything, whether every blob a delta bundle omits is there (or can be
mounted from where the baseline says it lives): exactly the check import makes
before it pushes.

Exit status: 0 when the bundle is clean; 3 when it failed verification
(any problem with its files, digests, sizes, names, metadata or signature);
1 when it cannot be read at all or the destination lacks omitted blobs; 2
for a usage error.`

const verifyExamples = `  ferry verify ./bundle
  ferry verify bundle.tar.gz
  ferry verify bundle.tar.000            # a split set: finds the other volumes and the sums file
  cat bundle.tar | ferry verify -
  ferry verify ./delta --against harbor.internal/mirror
  ferry verify bundle.tar --key cosign.pub --key second-approver.pub`
