package bundle

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/verify"
)

// LoadSigningKey reads a private key to sign bundles with: the cosign.key
// of a key pair made by cosign generate-key-pair (encrypted; password
// asks for its password), or a PEM ECDSA P-256 or Ed25519 private key
// (PKCS#8 "PRIVATE KEY", or SEC1 "EC PRIVATE KEY"). Errors wrap
// verify.ErrInvalidKey and name the file; no error carries the password or
// the key's bytes.
func LoadSigningKey(path string, password func() ([]byte, error)) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", verify.ErrInvalidKey, err)
	}
	fail := func(why string) (crypto.Signer, error) {
		return nil, fmt.Errorf("%w: %s: %s", verify.ErrInvalidKey, path, why)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return fail("not a PEM private key")
	}
	der := block.Bytes
	switch block.Type {
	case "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		if password == nil {
			return fail("the key is encrypted: give its password in COSIGN_PASSWORD")
		}
		pw, err := password()
		if err != nil {
			return fail("reading its password: " + err.Error())
		}
		if der, err = decryptCosignKey(block.Bytes, pw); err != nil {
			return fail(err.Error())
		}
	case "PRIVATE KEY":
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(der)
		if err != nil {
			return fail("not an EC private key")
		}
		return checkSigner(path, k)
	default:
		return fail(fmt.Sprintf("a PEM %q block; ferry takes cosign.key or a PKCS#8 ECDSA P-256 or Ed25519 private key", block.Type))
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return fail("not a PKCS#8 private key")
	}
	return checkSigner(path, k)
}

func checkSigner(path string, k any) (crypto.Signer, error) {
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve.Params().Name == "P-256" {
			return k, nil
		}
		return nil, fmt.Errorf("%w: %s: ECDSA on %s; ferry signs with P-256 (cosign's) or Ed25519", verify.ErrInvalidKey, path, k.Curve.Params().Name)
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%w: %s: a %T; ferry signs with ECDSA P-256 (cosign's) or Ed25519", verify.ErrInvalidKey, path, k)
}

// cosignKey is the JSON inside an encrypted cosign key: the key's PKCS#8
// bytes sealed with NaCl secretbox under a key derived with scrypt.
type cosignKey struct {
	KDF struct {
		Name   string `json:"name"`
		Params struct {
			N, R, P int
		} `json:"params"`
		Salt []byte `json:"salt"`
	} `json:"kdf"`
	Cipher struct {
		Name  string `json:"name"`
		Nonce []byte `json:"nonce"`
	} `json:"cipher"`
	Ciphertext []byte `json:"ciphertext"`
}

// errWrongPassword: the password does not open the key.
var errWrongPassword = errors.New("the password does not open it (COSIGN_PASSWORD?)")

func decryptCosignKey(data, password []byte) ([]byte, error) {
	var k cosignKey
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, errors.New("an encrypted key that does not parse")
	}
	p := k.KDF.Params
	// Bounds keep a hostile key file from asking for gigabytes of memory:
	// cosign's own parameters are N = 2^15 (legacy) to 2^17.
	if k.KDF.Name != "scrypt" || k.Cipher.Name != "nacl/secretbox" || len(k.Cipher.Nonce) != 24 ||
		p.N < 2 || p.N > 1<<20 || p.N&(p.N-1) != 0 || p.R < 1 || p.R > 32 || p.P < 1 || p.P > 16 {
		return nil, errors.New("an encrypted key in a form ferry does not read (want scrypt and nacl/secretbox)")
	}
	boxKey, err := scrypt.Key(password, k.KDF.Salt, p.N, p.R, p.P, 32)
	if err != nil {
		return nil, err
	}
	var key [32]byte
	var nonce [24]byte
	copy(key[:], boxKey)
	copy(nonce[:], k.Cipher.Nonce)
	der, ok := secretbox.Open(nil, k.Ciphertext, &nonce, &key)
	if !ok {
		return nil, errWrongPassword
	}
	return der, nil
}

// signBytes is ferry.json.sig for data, as cosign sign-blob writes it:
// base64 of the ECDSA signature (ASN.1) over data's SHA-256, or of the
// Ed25519 signature over data.
func signBytes(key crypto.Signer, data []byte) ([]byte, error) {
	if _, ok := key.(ed25519.PrivateKey); ok {
		sig, err := key.Sign(rand.Reader, data, crypto.Hash(0))
		if err != nil {
			return nil, fmt.Errorf("signing ferry.json: %w", err)
		}
		return []byte(base64.StdEncoding.EncodeToString(sig)), nil
	}
	return signDigest(key, digest.FromBytes(data))
}

// signDigest is signBytes for an ECDSA key, given the SHA-256 digest of
// the data rather than the data.
func signDigest(key crypto.Signer, sum digest.Digest) ([]byte, error) {
	if sum.Algorithm() != digest.SHA256 {
		return nil, fmt.Errorf("signing ferry.json: %w: a %s digest; the signature is over SHA-256", verify.ErrInvalidKey, sum.Algorithm())
	}
	raw, err := hex.DecodeString(sum.Encoded())
	if err != nil {
		return nil, fmt.Errorf("signing ferry.json: %w", err)
	}
	sig, err := key.Sign(rand.Reader, raw, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing ferry.json: %w", err)
	}
	return []byte(base64.StdEncoding.EncodeToString(sig)), nil
}

// Sign signs the bundle at path anew with key, without exporting it again
// (a second approver): ferry.json.sig is replaced, atomically, in a
// directory, or in a tarball written anew in the same form.
func Sign(ctx context.Context, path string, key crypto.Signer) error {
	b, err := layout.Open(path)
	if err != nil {
		return verify.Invalid(err)
	}
	defer b.Close()
	switch b := b.(type) {
	case *layout.Dir:
		data, err := b.BundleFile()
		if err != nil {
			return verify.Invalid(fmt.Errorf("%s: %w: a bundle without ferry.json cannot be signed", path, layout.ErrInvalidLayout))
		}
		sig, err := signBytes(key, data)
		if err != nil {
			return err
		}
		return b.WriteSignature(sig)
	case *layout.TarReader:
		if path == "-" {
			return fmt.Errorf("%w: standard input cannot be signed in place: sign the file", ErrInvalidOption)
		}
		head, err := b.ReadHead()
		if err != nil {
			return verify.Invalid(err)
		}
		sig, err := signBytes(key, head.ManifestFile)
		if err != nil {
			return err
		}
		b.Close()
		return layout.ReplaceSignature(path, sig)
	}
	return nil
}
