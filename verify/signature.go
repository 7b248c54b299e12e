package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// Sentinel errors of a bundle's signature; each also matches
// ErrBundleInvalid in a report's error.
var (
	// ErrUnsigned: a key was given, and the bundle has no ferry.json.sig.
	ErrUnsigned = errors.New("the bundle is not signed")
	// ErrBadSignature: ferry.json.sig does not verify with any key given.
	ErrBadSignature = errors.New("the bundle's signature does not verify")
	// ErrInvalidKey: a key file that cannot be read or parsed.
	ErrInvalidKey = errors.New("invalid key")
)

// LoadPublicKey reads a PEM public key (PKIX "PUBLIC KEY", as cosign.pub
// is): ECDSA P-256 or Ed25519. Errors wrap ErrInvalidKey and name the file.
func LoadPublicKey(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: %s: not a PEM public key (-----BEGIN PUBLIC KEY-----, as cosign.pub)", ErrInvalidKey, path)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidKey, path, err)
	}
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k.Curve.Params().Name != "P-256" {
			return nil, fmt.Errorf("%w: %s: ECDSA on %s; ferry takes P-256 (cosign's) or Ed25519", ErrInvalidKey, path, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: %s: a %T key; ferry takes ECDSA P-256 (cosign's) or Ed25519", ErrInvalidKey, path, key)
	}
	return key, nil
}

// CheckSignature verifies sig, ferry.json.sig as cosign sign-blob writes it
// (base64, or the raw signature), over ferry.json's bytes with any of keys:
// ECDSA over the SHA-256 of the bytes (ASN.1), or Ed25519 over the bytes.
// It returns ErrUnsigned for no signature, ErrBadSignature when no key
// verifies it, and the index of the key that did.
func CheckSignature(manifest, sig []byte, keys []crypto.PublicKey) (int, error) {
	return checkSignature(sha256.Sum256(manifest), func() ([]byte, error) { return manifest, nil }, sig, keys)
}

// checkSignature is CheckSignature of the bytes whose SHA-256 is sum, which
// whole returns: only an Ed25519 key needs them, and only then are they
// read.
func checkSignature(sum [sha256.Size]byte, whole func() ([]byte, error), sig []byte, keys []crypto.PublicKey) (int, error) {
	if len(sig) == 0 {
		return -1, fmt.Errorf("%w: no %s beside ferry.json", ErrUnsigned, "ferry.json.sig")
	}
	raw := sig
	if dec, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(sig))); err == nil {
		raw = dec
	}
	for i, k := range keys {
		switch k := k.(type) {
		case *ecdsa.PublicKey:
			if ecdsa.VerifyASN1(k, sum[:], raw) {
				return i, nil
			}
		case ed25519.PublicKey:
			if len(raw) != ed25519.SignatureSize {
				continue
			}
			manifest, err := whole()
			if err != nil {
				return -1, err
			}
			if ed25519.Verify(k, manifest, raw) {
				return i, nil
			}
		}
	}
	return -1, fmt.Errorf("%w with the %d key(s) given: ferry.json was changed after it was signed, or another key signed it", ErrBadSignature, len(keys))
}
