package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-oci/ferry/bundle"
)

func newImportCmd(g *globals) *cobra.Command {
	var opts bundle.ImportOptions
	var keys []string
	cmd := &cobra.Command{
		Use:   "import BUNDLE|- --to REGISTRY[/PREFIX]",
		Short: "Verify a bundle and push it into a registry",
		Long: `Verify a bundle and push it into a registry.

The bundle's structure is checked first, offline: index.json, every manifest
(hashed), every blob a manifest references present with its size, ferry.json.
If anything is wrong, nothing is pushed. Then the blobs the destination lacks
are pushed, each read once and hashed as it goes out: its last bytes are held
back until it verifies, so the registry never stores a blob that does not
match, and a bad blob stops the import before any manifest or tag. Manifests
go next, children first, and tags last, so a tag never points at an
incomplete image. What the destination already has is skipped (and not read);
a tag already at the right digest is not touched.

--verify-first hashes every blob of a directory bundle before the first push,
so a corrupt bundle pushes nothing at all, at the cost of reading every blob
twice. (ferry verify BUNDLE does the same check on its own, for tarballs too.)

A tarball (.tar, .tar.gz, a split set, or - for standard input) is read once,
without extracting: the plan comes from its head, and every blob is hashed as
it goes by and pushed if the destination lacks it. If any blob fails, or the
stream ends early, no manifest and no tag is pushed. A failed upload from a
.tar or a split set is retried with the blob read again from the file; a
.tar.gz or standard input cannot be read twice, so re-run the import (it
skips what arrived).

--to drops the source host and keeps the repository path:
docker.io/library/alpine:3.20 → harbor.internal/mirror/library/alpine:3.20.
Two images that would get one destination tag that way (docker.io/x/app:1
and ghcr.io/x/app:1) are refused before anything is pushed; --keep-host
keeps each source host in the path (harbor.internal/mirror/docker.io/x/app:1,
a port's colon as '-') so they stay apart.
A plain OCI layout from another tool whose images are named by a bare tag
needs --to REGISTRY/REPOSITORY.`,
		Example: `  ferry import ./bundle --to harbor.internal/mirror
  ferry import ./bundle --to registry.local:5000 --dest-plain-http
  ferry import bundle.tar.000 --to harbor.internal/mirror      # a split set
  cat bundle.tar | ferry import - --to harbor.internal/mirror
  ferry import ./bundle --to harbor.internal/mirror --dry-run
  ferry import ./bundle --to harbor.internal/mirror --verify-first
  ferry import bundle.tar --to harbor.internal/mirror --verify-key cosign.pub`,
		Args: exactArgs(1, "BUNDLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.To == "" {
				return usagef("no destination: give --to REGISTRY[/PREFIX], e.g. --to harbor.internal/mirror")
			}
			opts.Bundle = args[0]
			var err error
			if opts.VerifyKeys, err = loadPublicKeys(keys); err != nil {
				return err
			}
			opts.Jobs, opts.Progress = g.jobs, newProgress(g)
			res, err := bundle.Import(cmd.Context(), opts)
			if err != nil {
				return err
			}
			printImport(g, opts, res)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.To, "to", "", "destination REGISTRY[/PREFIX]")
	cmd.Flags().BoolVar(&opts.KeepHost, "keep-host", false, "keep each source registry's host in the path under the prefix (docker.io/x/app:1 → PREFIX/docker.io/x/app:1), so the same path on two registries stays apart")
	cmd.Flags().StringArrayVar(&keys, "verify-key", nil, "refuse (exit 3, before any request) a bundle not signed by this public key (cosign.pub, or PEM ECDSA P-256 / Ed25519); repeatable: any of them")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "verify and ask the destination, but push nothing")
	cmd.Flags().BoolVar(&opts.VerifyFirst, "verify-first", false, "directory bundles: hash every blob before the first push, so a corrupt bundle pushes nothing at all (reads each blob twice)")
	cmd.Flags().BoolVar(&opts.NoOverwrite, "no-overwrite", false, "refuse (before pushing anything) to move a tag that points at another image")
	cmd.Flags().BoolVar(&opts.Harbor, "harbor", false, "the destination is Harbor: check project names by its stricter rules before any request")
	cmd.Flags().BoolVar(&opts.CreateProjects, "create-projects", false, "create missing Harbor projects (private) through Harbor's API; implies --harbor")
	registryFlags(cmd, "dest", &opts.Dest)
	return cmd
}

func printImport(g *globals, opts bundle.ImportOptions, res *bundle.ImportResult) {
	s := res.Summary
	if opts.DryRun {
		fmt.Fprintf(g.out, "plan (dry run, nothing pushed):\n")
		for _, t := range res.Targets {
			fmt.Fprintf(g.out, "  image %s → %s\n", t.Source, t.Dest)
		}
		for _, r := range res.Referrers {
			what := "push"
			if r.Present {
				what = "there already"
			}
			fmt.Fprintf(g.out, "  %-20s %s of %s → %s: %s\n", r.Kind(), r.Desc.Digest, r.Image, r.Dest.Name(), what)
		}
		for _, u := range s.Untagged {
			fmt.Fprintf(g.out, "  image %s: pushed by digest, no tag (the bundle names it by digest alone)\n", u)
		}
		for _, a := range res.Tags {
			switch a.Current {
			case "":
				fmt.Fprintf(g.out, "  tag   %s: create\n", a.Target.Dest)
			case a.Target.Root().Digest:
				fmt.Fprintf(g.out, "  tag   %s: already right\n", a.Target.Dest)
			default:
				fmt.Fprintf(g.out, "  tag   %s: move from %s\n", a.Target.Dest, a.Current)
			}
		}
		for _, rb := range res.Push {
			fmt.Fprintf(g.out, "  push             %s  %10s  to %s\n", rb.Desc.Digest, bundle.HumanBytes(rb.Desc.Size), rb.Repository)
		}
		for _, rb := range res.Mounted {
			fmt.Fprintf(g.out, "  mount (omitted)  %s  %10s  into %s\n", rb.Desc.Digest, bundle.HumanBytes(rb.Desc.Size), rb.Repository)
		}
		for _, rb := range res.Present {
			fmt.Fprintf(g.out, "  skip (present)   %s  %10s  in %s\n", rb.Desc.Digest, bundle.HumanBytes(rb.Desc.Size), rb.Repository)
		}
		printCounts(g, s, "would send", "are")
		printPolicies(g, res.Policies)
		return
	}
	fmt.Fprintf(g.out, "imported %d image(s) into %s\n", s.Images, opts.To)
	switch {
	case s.SignatureVerified:
		fmt.Fprintf(g.out, "  bundle:    signed, signature verified\n")
	case s.Signed:
		fmt.Fprintf(g.out, "  bundle:    signed, but not checked: give --verify-key to refuse bundles others made\n")
	default:
		fmt.Fprintf(g.out, "  bundle:    not signed\n")
	}
	if len(res.ProjectsCreated) > 0 {
		fmt.Fprintf(g.out, "  projects:  created %s\n", strings.Join(res.ProjectsCreated, ", "))
	}
	printCounts(g, s, "sent", "were")
	printPolicies(g, res.Policies)
	fmt.Fprintf(g.out, "  referrers: %d pushed, %d already there, every one found there after the import\n", s.ReferrersPushed, s.ReferrersPresent)
	fmt.Fprintf(g.out, "  tags:      %d set, %d moved, %d unchanged\n", len(s.TagsSet), len(s.TagsMoved), s.TagsUnchanged)
	for _, t := range s.TagsMoved {
		fmt.Fprintf(g.out, "    moved %s\n", t)
	}
	for _, u := range s.Untagged {
		fmt.Fprintf(g.out, "    pushed by digest, no tag: %s (the bundle names it by digest alone)\n", u)
	}
	fmt.Fprintf(g.out, "  time:      %s (%s/s)\n", s.Duration.Round(1e6), bundle.HumanBytes(int64(s.Throughput())))
}

// printCounts renders an import's counts, the same for a dry run and a
// real one: distinct blobs as export counts them, then what happened per
// repository, named as such.
func printPolicies(g *globals, policies []bundle.Policy) {
	for _, p := range policies {
		if len(p.Unsigned) == 0 {
			fmt.Fprintf(g.out, "  policy:    Harbor project %s allows only signed images (%s): every image of the bundle is signed\n", p.Project, p.Trust)
			continue
		}
		fmt.Fprintf(g.out, "  policy:    Harbor project %s allows only signed images (%s): %d image(s) without a signature will not be pulled: %s\n", p.Project, p.Trust, len(p.Unsigned), strings.Join(p.Unsigned, ", "))
	}
}

func printCounts(g *globals, s bundle.ImportSummary, sent, were string) {
	fmt.Fprintf(g.out, "  blobs:     %d (%s), manifests included: %s %d (%s); %d %s at the destination already",
		s.Blobs, bundle.HumanBytes(s.Bytes), sent, s.Sent, bundle.HumanBytes(s.SentBytes), s.Blobs-s.Sent-s.Foreign, were)
	if s.Foreign > 0 {
		fmt.Fprintf(g.out, "; %d foreign layer(s) not carried (the runtime fetches them from their URLs)", s.Foreign)
	}
	fmt.Fprintln(g.out)
	fmt.Fprintf(g.out, "  per repository: %d upload(s), %d mount(s), %d config/layer(s) in place; %d manifest(s) pushed, %d in place\n",
		s.Uploads, s.Mounted, s.InPlace, s.ManifestsPushed, s.ManifestsPresent)
}

// exactArgs is cobra.ExactArgs with a message that names the argument.
func exactArgs(n int, name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %d argument (%s), got %d; see '%s --help'", cmd.Name(), n, name, len(args), cmd.CommandPath())
		}
		return nil
	}
}
