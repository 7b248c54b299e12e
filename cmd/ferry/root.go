package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/verify"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "v0.1.0-dev"

// Exit codes scripts can rely on.
const (
	exitOK          = 0
	exitFailure     = 1   // a registry, network or file system failure
	exitUsage       = 2   // bad flags, arguments or references
	exitInvalid     = 3   // the bundle failed verification
	exitInterrupted = 130 // Ctrl-C or SIGTERM
)

// usageError marks errors in what the user typed.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// globals are the flags every command shares.
type globals struct {
	quiet bool
	jobs  int
	out   io.Writer // summaries and reports
	err   io.Writer // progress and errors
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "ferry",
		Short: "Carry container images across an air gap",
		Long: `ferry carries container images across an air gap.

On the connected side, 'ferry export' pulls images from registries into a
bundle (an OCI image layout). On the air-gapped side, 'ferry import' verifies
every byte of the bundle and pushes it into the internal registry: blobs
first, then manifests, then signatures and other referrers, then tags;
skipping what is already there.

Exit codes:
  0    success
  1    failure: registry, network, file system; a delta's blobs missing at the
       destination; a referrer not found there after an import
  2    usage: flags, arguments, references, --to, an unknown command, a key
       file, an output directory that holds something else, two images for
       one tag
  3    the bundle failed verification, in any form: a file that does not
       parse, a digest or size, an unsafe tar entry, a document over its cap,
       a missing part, a missing or bad signature
  130  interrupted (Ctrl-C, SIGTERM)`,
		Example: `  ferry export docker.io/library/alpine:3.20 -o ./bundle
  ferry verify ./bundle
  ferry import ./bundle --to harbor.internal/mirror`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "no progress output, only the summary and errors")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	export, imp, ver, inv := newExportCmd(g), newImportCmd(g), newVerifyCmd(g), newInventoryCmd(g)
	for _, cmd := range []*cobra.Command{export, imp, ver, inv} {
		jobsFlag(cmd, g)
	}
	root.AddCommand(export, imp, ver, newInspectCmd(g), inv, newSignCmd(g), newLoginCmd(g), newLogoutCmd(g), newVersionCmd(g))
	return root
}

// jobsFlag binds --jobs on a command that moves or hashes blobs (and only
// there: inspect, login and the rest have nothing to run in parallel).
func jobsFlag(cmd *cobra.Command, g *globals) {
	cmd.Flags().IntVarP(&g.jobs, "jobs", "j", layout.DefaultJobs(), "how many blobs move (or are hashed) at once")
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print ferry's version",
		Example: "  ferry version",
		Args:    exactArgs(0, "none"),
		Run: func(*cobra.Command, []string) {
			fmt.Fprintf(g.out, "ferry %s\n", version)
		},
	}
}

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{out: stdout, err: stderr}
	root := newRootCmd(g)
	root.SetArgs(args)
	root.SetOut(g.out)
	root.SetErr(g.err)
	// An unknown command is a usage error, like an unknown flag.
	if _, _, err := root.Find(args); err != nil {
		fmt.Fprintf(g.err, "ferry: error: %v\nsee 'ferry --help' for the commands\n", err)
		return exitUsage
	}
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(g.err, "ferry: error:", err)
	return exitCode(ctx, err)
}

func exitCode(ctx context.Context, err error) int {
	var ue usageError
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue), errors.Is(err, bundle.ErrInvalidReference), errors.Is(err, bundle.ErrInvalidOption), errors.Is(err, verify.ErrInvalidKey):
		return exitUsage
	case errors.Is(err, verify.ErrBundleInvalid):
		return exitInvalid
	}
	return exitFailure
}

// registryFlags binds the flags that reach one side's registries: side is
// "src" or "dest" (flags --src-creds, …).
func registryFlags(cmd *cobra.Command, side string, o *registry.Options) {
	cmd.Flags().StringVar(&o.Credentials, side+"-creds", "", "USER:PASSWORD for the "+side+" registry (default: the auth file)")
	connectionFlags(cmd, side+"-", "the "+side+" registry", o)
}

// connectionFlags binds the TLS, HTTP and auth-file flags, named with prefix.
func connectionFlags(cmd *cobra.Command, prefix, what string, o *registry.Options) {
	cmd.Flags().BoolVar(&o.PlainHTTP, prefix+"plain-http", false, "talk plain HTTP to "+what)
	if cmd.Flags().Lookup("timeout") == nil {
		cmd.Flags().DurationVar(&o.Timeout, "timeout", registry.DefaultTimeout, "how long one request waits for a registry's answer before ferry gives up on it (a stall shows on the progress line meanwhile)")
	}
	if cmd.Flags().Lookup("debug") == nil {
		cmd.Flags().BoolVar(&o.Debug, "debug", false, "log every registry request: method, URL, status, duration, retries (credentials and tokens are never logged)")
	}
	cmd.Flags().StringVar(&o.CAFile, prefix+"ca-file", "", "PEM file of CA certificates to trust for "+what)
	cmd.Flags().StringVar(&o.CertDir, prefix+"cert-dir", "", "certs.d-style directory for "+what+": *.crt CAs, client.cert + client.key for mutual TLS")
	cmd.Flags().Var((*verifyFlag)(&o.InsecureSkipTLSVerify), prefix+"tls-verify", "verify "+what+"'s TLS certificate (--"+prefix+"tls-verify=false for the brave)")
	cmd.Flags().Lookup(prefix + "tls-verify").NoOptDefVal = "true"
	if cmd.Flags().Lookup("authfile") == nil {
		cmd.Flags().StringVar(&o.AuthFile, "authfile", "", "credentials file (default: $REGISTRY_AUTH_FILE, else docker's config.json)")
	}
	o.UserAgent = "ferry/" + version
}

// verifyFlag is a --tls-verify flag stored as its opposite, so that the
// options' zero value verifies.
type verifyFlag bool

func (v *verifyFlag) String() string {
	if v == nil || !*v {
		return "true"
	}
	return "false"
}

func (v *verifyFlag) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*v = verifyFlag(!b)
	return nil
}

func (v *verifyFlag) Type() string { return "bool" }
