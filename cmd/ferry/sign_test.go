package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

const cosignPassword = "not-a-real-secret-42"

// cosignIn runs the real cosign in dir with the test's password.
func cosignIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(regtest.Tool(t, "cosign"), args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), regtest.CosignEnv(dir)...), "COSIGN_PASSWORD="+cosignPassword)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cosign %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// pemKeys writes a PEM private key (PKCS#8) and its public key for priv.
func pemKeys(t *testing.T, dir, name string, priv any, pub any) (string, string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	k, p := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".pub")
	os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)
	return k, p
}

// Signed bundles: ferry signs ferry.json with a cosign key pair (or a PEM
// ECDSA P-256 or Ed25519 key) in every form, verify --key and import
// --verify-key accept it, cosign verify-blob accepts ferry's signature and
// ferry accepts cosign sign-blob's; an unsigned bundle, a flipped byte in
// ferry.json or the signature, another key's signature, or an index.json
// edited after signing is refused with exit 3 and nothing pushed; ferry
// sign re-signs for a second approver; no secret reaches the bundle or the
// output. (Not parallel: it sets COSIGN_PASSWORD and os.Stdin.)
func TestSignedBundles(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", cosignPassword)
	src := regtest.New(t, regtest.Distribution)
	set, _ := imagegen.Generate(imagegen.Options{Apps: 1, LayerSize: 16 << 10})
	if err := set.Push(context.Background(), src.Host); err != nil {
		t.Fatal(err)
	}
	ref := set.Images[1].Reference(src.Host)
	keys := t.TempDir()
	cosignIn(t, keys, "generate-key-pair")
	key, pub := filepath.Join(keys, "cosign.key"), filepath.Join(keys, "cosign.pub")
	other := t.TempDir()
	cosignIn(t, other, "generate-key-pair")
	otherKey, otherPub := filepath.Join(other, "cosign.key"), filepath.Join(other, "cosign.pub")
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edKey, edPubFile := pemKeys(t, keys, "ed25519", edPriv, edPub)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecKey, ecPubFile := pemKeys(t, keys, "ecdsa", ecPriv, &ecPriv.PublicKey)
	dst := regtest.New(t, regtest.Debian)
	work := t.TempDir()
	var outputs strings.Builder
	run := func(args ...string) (int, string, string) {
		code, stdout, stderr := ferry(t, args...)
		outputs.WriteString(stdout + stderr)
		return code, stdout, stderr
	}

	// Every form round-trips, signed with cosign's key.
	for _, form := range []struct{ name, out, in string }{
		{"directory", "dir", "dir"}, {"tar", "b.tar", "b.tar"}, {"tar.gz", "b.tar.gz", "b.tar.gz"},
		{"split set", "s.tar", "s.tar.000"}, {"stdin", "p.tar", "-"},
	} {
		args := []string{"export", ref, "-o", filepath.Join(work, form.out), "--src-plain-http", "--sign-key", key}
		if form.name == "split set" {
			args = append(args, "--split-size", "20K")
		}
		if code, _, stderr := run(args...); code != 0 {
			t.Fatalf("%s: signed export: exit %d\n%s", form.name, code, stderr)
		}
		in := filepath.Join(work, form.in)
		if form.in == "-" {
			f, err := os.Open(filepath.Join(work, form.out))
			if err != nil {
				t.Fatal(err)
			}
			stdin := os.Stdin
			os.Stdin = f
			defer func() { os.Stdin = stdin; f.Close() }()
			in = "-"
		} else if code, stdout, stderr := run("verify", in, "--key", pub); code != 0 || !strings.Contains(stdout, "verified with "+pub) {
			t.Fatalf("%s: verify --key: exit %d\n%s%s", form.name, code, stdout, stderr)
		}
		code, stdout, stderr := run("import", in, "--to", dst.Host+"/"+strings.ReplaceAll(form.out, ".", "-"), "--dest-plain-http", "--verify-key", otherPub, "--verify-key", pub)
		if code != 0 || !strings.Contains(stdout, "signature verified") {
			t.Fatalf("%s: import --verify-key: exit %d\n%s%s", form.name, code, stdout, stderr)
		}
	}

	dir := filepath.Join(work, "dir")
	manifest, sig := filepath.Join(dir, layout.FileBundle), filepath.Join(dir, layout.FileSignature)
	// cosign accepts ferry's signature, ECDSA and Ed25519 alike.
	cosignIn(t, keys, "verify-blob", "--key", pub, "--signature", sig, "--insecure-ignore-tlog", manifest)
	for _, k := range [][2]string{{edKey, edPubFile}, {ecKey, ecPubFile}} {
		pemDir := filepath.Join(t.TempDir(), "b")
		if code, _, stderr := run("export", ref, "-o", pemDir, "--src-plain-http", "--sign-key", k[0]); code != 0 {
			t.Fatalf("export signed with %s: %s", k[0], stderr)
		}
		cosignIn(t, keys, "verify-blob", "--key", k[1], "--signature", filepath.Join(pemDir, layout.FileSignature), "--insecure-ignore-tlog", filepath.Join(pemDir, layout.FileBundle))
		if code, stdout, _ := run("verify", pemDir, "--key", k[1]); code != 0 {
			t.Fatalf("verify with %s: exit %d %s", k[1], code, stdout)
		}
		// A tarball file's ferry.json is not held: Ed25519 reads it again.
		pemTar := filepath.Join(t.TempDir(), "b.tar")
		if code, _, stderr := run("export", ref, "-o", pemTar, "--src-plain-http", "--sign-key", k[0]); code != 0 {
			t.Fatalf("export to a tarball signed with %s: %s", k[0], stderr)
		}
		if code, stdout, stderr := run("verify", pemTar, "--key", k[1]); code != 0 || !strings.Contains(stdout, "verified with "+k[1]) {
			t.Fatalf("verify of a tarball with %s: exit %d %s%s", k[1], code, stdout, stderr)
		}
	}
	// ferry accepts cosign sign-blob's signature over the same ferry.json.
	blob := filepath.Join(t.TempDir(), "b")
	os.CopyFS(blob, os.DirFS(dir))
	os.Remove(filepath.Join(blob, layout.FileSignature))
	cosignIn(t, keys, "sign-blob", "--key", key, "--tlog-upload=false", "--output-signature", filepath.Join(blob, layout.FileSignature), filepath.Join(blob, layout.FileBundle))
	if code, stdout, stderr := run("verify", blob, "--key", pub); code != 0 {
		t.Fatalf("verify of cosign sign-blob's signature: exit %d\n%s%s", code, stdout, stderr)
	}

	// Refused, exit 3, nothing pushed.
	refused := regtest.New(t, regtest.Distribution)
	tamper := map[string]func(d string){
		"unsigned":                   func(d string) { os.Remove(filepath.Join(d, layout.FileSignature)) },
		"flipped byte in ferry.json": func(d string) { flip(t, filepath.Join(d, layout.FileBundle), 40) },
		"flipped byte in the signature": func(d string) {
			p := filepath.Join(d, layout.FileSignature)
			raw, _ := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(mustRead(t, p))))
			raw[10] ^= 1
			os.Chmod(p, 0o644)
			os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(raw)), 0o644)
		},
		"signed by another key": func(d string) {
			if code, _, stderr := run("sign", d, "--key", otherKey); code != 0 {
				t.Fatalf("sign: %s", stderr)
			}
		},
		"index.json edited after signing": func(d string) {
			p := filepath.Join(d, layout.FileIndex)
			data := bytes.Replace(mustRead(t, p), []byte("team/app1"), []byte("team/evil"), -1)
			os.Chmod(p, 0o644)
			os.WriteFile(p, data, 0o644)
		},
	}
	for name, mutate := range tamper {
		d := filepath.Join(t.TempDir(), "b")
		os.CopyFS(d, os.DirFS(dir))
		mutate(d)
		for _, cmd := range [][]string{{"verify", d, "--key", pub}, {"import", d, "--to", refused.Host + "/x", "--dest-plain-http", "--verify-key", pub}} {
			if code, stdout, stderr := run(cmd...); code != exitInvalid {
				t.Errorf("%s: %s: exit %d, want %d\n%s%s", name, cmd[0], code, exitInvalid, stdout, stderr)
			}
		}
	}
	// A tarball whose ferry.json changed after signing is refused before
	// any blob is read.
	if code, _, stderr := run("import", tarOf(t, dir, map[string][]byte{layout.FileBundle: append(mustRead(t, manifest), ' ')}), "--to", refused.Host+"/x", "--dest-plain-http", "--verify-key", pub); code != exitInvalid || !strings.Contains(stderr, "signature") {
		t.Errorf("tarball with ferry.json changed after signing: exit %d\n%s", code, stderr)
	}
	if n := countRegular(filepath.Join(refused.Dir, "storage")); n != 0 {
		t.Errorf("refused imports stored %d files at the destination", n)
	}

	// A second approver re-signs without exporting again: a tarball too.
	tarball := filepath.Join(work, "b.tar")
	for _, b := range []string{dir, tarball, filepath.Join(work, "s.tar.001")} {
		if code, _, stderr := run("sign", b, "--key", otherKey); code != 0 {
			t.Fatalf("ferry sign %s: %s", b, stderr)
		}
		if code, stdout, stderr := run("verify", b, "--key", otherPub); code != 0 || !strings.Contains(stdout, "OK") {
			t.Fatalf("verify after re-signing %s: exit %d\n%s%s", b, code, stdout, stderr)
		}
		if code, _, _ := run("verify", b, "--key", pub); code != exitInvalid {
			t.Errorf("%s re-signed by another key still verifies with the first: exit %d", b, code)
		}
	}
	// Without --verify-key a signed bundle imports, and says it was not checked.
	if code, stdout, _ := run("import", dir, "--to", dst.Host+"/unchecked", "--dest-plain-http"); code != 0 || !strings.Contains(stdout, "signed, but not checked") {
		t.Errorf("import of a signed bundle without --verify-key: exit %d\n%s", code, stdout)
	}
	// A key file that cannot be parsed is a usage error naming it.
	bogus := filepath.Join(keys, "bogus.pub")
	os.WriteFile(bogus, []byte("not a key"), 0o644)
	for _, cmd := range [][]string{{"verify", dir, "--key", bogus}, {"export", ref, "-o", filepath.Join(work, "x"), "--sign-key", bogus}} {
		if code, _, stderr := run(cmd...); code != exitUsage || !strings.Contains(stderr, bogus) {
			t.Errorf("%s with an unparsable key: exit %d\n%s", cmd[0], code, stderr)
		}
	}
	// No secret anywhere: not in what ferry printed, not in any bundle.
	if strings.Contains(outputs.String(), cosignPassword) {
		t.Error("ferry printed the key's password")
	}
	filepath.Walk(work, func(path string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if data := mustRead(t, path); bytes.Contains(data, []byte(cosignPassword)) || bytes.Contains(data, []byte("PRIVATE KEY")) {
				t.Errorf("%s holds a secret", path)
			}
		}
		return nil
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func flip(t *testing.T, path string, at int) {
	t.Helper()
	data := mustRead(t, path)
	data[at] ^= 1
	os.Chmod(path, 0o644)
	os.WriteFile(path, data, 0o644)
}

func countRegular(root string) int {
	n := 0
	filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
		}
		return nil
	})
	return n
}
