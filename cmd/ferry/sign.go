package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-oci/ferry/bundle"
)

func newSignCmd(g *globals) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "sign BUNDLE --key KEY",
		Short: "Sign a bundle (again) without exporting it again",
		Long: `Sign a bundle's ferry.json with KEY and write ferry.json.sig: beside it in a
directory, or right after it in a tarball (.tar, .tar.gz or a split set,
written anew in the same form and renamed over the old one). A signature
already there is replaced: a second approver signs what the first checked.

ferry.json lists the digest of every image, referrer and blob, so one
signature covers every byte. KEY is the cosign.key of a cosign key pair
(its password from COSIGN_PASSWORD, or asked for on a terminal), or a PEM
ECDSA P-256 or Ed25519 private key. The signature is cosign's blob
signature: cosign verify-blob --key cosign.pub --signature ferry.json.sig
--insecure-ignore-tlog ferry.json checks it too.`,
		Example: `  COSIGN_PASSWORD=… ferry sign ./bundle --key cosign.key
  ferry sign bundle.tar.000 --key approver.pem
  ferry verify bundle.tar.000 --key approver.pub`,
		Args: exactArgs(1, "BUNDLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return usagef("no key: give --key KEY (cosign.key, or a PEM private key)")
			}
			k, err := loadSigningKey(g, key)
			if err != nil {
				return err
			}
			if err := bundle.Sign(cmd.Context(), args[0], k); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "signed %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "private key to sign with")
	return cmd
}
