package main

import (
	"crypto"
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/verify"
)

// loadPublicKeys reads every --key / --verify-key file; a file that cannot
// be read or parsed is a usage error that names it.
func loadPublicKeys(paths []string) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for _, p := range paths {
		k, err := verify.LoadPublicKey(p)
		if err != nil {
			return nil, usageError{err}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// loadSigningKey reads --sign-key: an encrypted cosign.key takes its
// password from COSIGN_PASSWORD, as cosign does, or asks for it on the
// terminal. The password is never printed or kept.
func loadSigningKey(g *globals, path string) (crypto.Signer, error) {
	password := func() ([]byte, error) {
		if pw, ok := os.LookupEnv("COSIGN_PASSWORD"); ok {
			return []byte(pw), nil
		}
		if !term.IsTerminal(int(os.Stdin.Fd())) {
			return nil, fmt.Errorf("no terminal to ask on: set COSIGN_PASSWORD")
		}
		fmt.Fprintf(g.err, "password for %s: ", path)
		pw, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(g.err)
		return pw, err
	}
	k, err := bundle.LoadSigningKey(path, password)
	if err != nil {
		return nil, usageError{err}
	}
	return k, nil
}
