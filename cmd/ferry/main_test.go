package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ferry-oci/ferry/layout"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

func ferry(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrorsExitTwo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"export", "--nope"}, "unknown flag"},
		{"export without images", []string{"export", "-o", dir}, "--images-file"},
		{"export without output", []string{"export", "alpine"}, "-o"},
		{"export with a bad reference", []string{"export", "Not/Valid:ref", "-o", dir}, `"Not/Valid:ref"`},
		{"images file with a bad line", []string{"export", "--images-file", writeFile(t, "alpine\nbad ref here\n"), "-o", dir}, ":2:"},
		{"import without --to", []string{"import", dir}, "--to REGISTRY"},
		{"import with a bad --to", []string{"import", dir, "--to", "https://x"}, "no scheme"},
		{"verify without a bundle", []string{"verify"}, "BUNDLE"},
		{"bad credentials form", []string{"export", "alpine", "-o", dir, "--src-creds", "nocolon"}, "USER:PASSWORD"},
		{"unknown command", []string{"versoin"}, "unknown command"},
		{"version with an argument", []string{"version", "x"}, "version takes 0"},
		{"--jobs where nothing runs in parallel", []string{"inspect", "--jobs", "4", dir}, "unknown flag: --jobs"},
		{"--jobs on logout", []string{"logout", "-j", "4", "h"}, "unknown shorthand flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := ferry(t, tt.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q does not say %q", stderr, tt.want)
			}
		})
	}
}

func writeFile(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "images.txt")
	os.WriteFile(p, []byte(content), 0o644)
	return p
}

func TestVersion(t *testing.T) {
	t.Parallel()
	if code, out, _ := ferry(t, "version"); code != 0 || strings.TrimSpace(out) != "ferry "+version {
		t.Fatalf("ferry version: exit %d, %q", code, out)
	}
}

func TestHelpListsTheExitCodes(t *testing.T) {
	t.Parallel()
	code, out, _ := ferry(t, "--help")
	for _, want := range []string{"Exit codes", "  2 ", "  3 ", "130"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("ferry --help does not say %q:\n%s", want, out)
		}
	}
}

func TestHelpHasExamples(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"export", "import", "verify", "inspect"} {
		code, out, _ := ferry(t, cmd, "--help")
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "ferry "+cmd) {
			t.Errorf("%s --help: exit %d, no examples:\n%s", cmd, code, out)
		}
	}
}

func TestExportVerifyImportExitCodes(t *testing.T) {
	t.Parallel()
	src := regtest.New(t, regtest.Distribution)
	dst := regtest.New(t, regtest.Debian)
	set, _ := imagegen.Generate(imagegen.Options{Apps: 1})
	if err := set.Push(context.Background(), src.Host); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, img := range set.Images {
		lines = append(lines, img.Reference(src.Host))
	}
	out := filepath.Join(t.TempDir(), "bundle")
	// --images-file twice: the files merge (it kept only the last one).
	code, stdout, stderr := ferry(t, "export", "--images-file", writeFile(t, "# test\n"+strings.Join(lines[:2], "\n")), "--images-file", writeFile(t, strings.Join(lines[2:], "\n")), "-o", out, "--src-plain-http")
	if code != 0 || !strings.Contains(stdout, "exported 4 image(s)") {
		t.Fatalf("export: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, _ = ferry(t, "verify", out); code != 0 || !strings.Contains(stdout, "OK") {
		t.Fatalf("verify: exit %d\n%s", code, stdout)
	}
	if code, stdout, _ = ferry(t, "inspect", out); code != 0 || !strings.Contains(stdout, "linux/amd64, linux/arm64") {
		t.Fatalf("inspect: exit %d\n%s", code, stdout)
	}
	code, stdout, stderr = ferry(t, "import", out, "--to", dst.Host+"/mirror", "--dest-plain-http")
	if code != 0 || !strings.Contains(stdout, "tags:      4 set, 0 moved, 0 unchanged") {
		t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// A flipped bit: verify and import exit 3 and name the blob.
	var victim string
	for _, d := range set.Digests() {
		if len(set.Blobs[d]) > 1000 {
			victim = d.Encoded()
			break
		}
	}
	path := filepath.Join(out, "blobs", "sha256", victim)
	os.Chmod(path, 0o644)
	data, _ := os.ReadFile(path)
	data[100] ^= 1
	os.WriteFile(path, data, 0o644)
	code, stdout, stderr = ferry(t, "verify", out)
	if code != exitInvalid || !strings.Contains(stderr, victim) {
		t.Fatalf("verify of a corrupt bundle: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "FAILED") || strings.Contains(stdout, "verified") || strings.Contains(stdout, "OK") {
		t.Errorf("verify of a corrupt bundle must say FAILED on stdout, and never 'verified':\n%s", stdout)
	}
	code, _, stderr = ferry(t, "import", out, "--to", dst.Host+"/other", "--dest-plain-http")
	if code != exitInvalid || !strings.Contains(stderr, victim) {
		t.Fatalf("import of a corrupt bundle: exit %d\n%s", code, stderr)
	}
	// Not a bundle at all.
	code, _, stderr = ferry(t, "verify", t.TempDir())
	if code != exitFailure || !strings.Contains(stderr, layout.FileOCILayout) {
		t.Fatalf("verify of an empty directory: exit %d\n%s", code, stderr)
	}
}

// TestOnlyBundleRegistryTalksToRegistries guards DESIGN.md's package
// table: registry I/O goes through bundle/registry, the one product
// package that imports oras-go's registry/remote.
func TestOnlyBundleRegistryTalksToRegistries(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "github.com/ferry-oci/ferry/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		if pkg != "github.com/ferry-oci/ferry/bundle/registry" && strings.Contains(" "+imports+" ", " oras.land/oras-go/v2/registry/remote ") {
			t.Errorf("%s imports oras-go's registry/remote; go through bundle/registry", pkg)
		}
	}
}

// TestLibraryPackagesStayOffTheCLI guards the thin-CLI rule: no library
// package imports cobra or the progress bar.
func TestLibraryPackagesStayOffTheCLI(t *testing.T) {
	t.Parallel()
	for _, pkg := range []string{"bundle", "layout", "delta", "verify"} {
		out, err := exec.Command("go", "list", "-deps", "github.com/ferry-oci/ferry/"+pkg).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, banned := range []string{"github.com/spf13/cobra", "github.com/schollz/progressbar"} {
			if strings.Contains(string(out), banned) {
				t.Errorf("package %s depends on %s", pkg, banned)
			}
		}
	}
}

func TestTarballFromStdinAndSplitFlags(t *testing.T) {
	src := regtest.New(t, regtest.Distribution)
	dst := regtest.New(t, regtest.Distribution)
	set, _ := imagegen.Generate(imagegen.Options{Apps: 1})
	if err := set.Push(context.Background(), src.Host); err != nil {
		t.Fatal(err)
	}
	ref := set.Images[1].Reference(src.Host)
	work := t.TempDir()
	if code, _, stderr := ferry(t, "export", ref, "-o", filepath.Join(work, "b.tar"), "--src-plain-http", "--split-size", "bogus"); code != exitUsage || !strings.Contains(stderr, "--split-size") {
		t.Fatalf("bad --split-size: exit %d %s", code, stderr)
	}
	if code, _, stderr := ferry(t, "export", ref, "-o", filepath.Join(work, "s.tar"), "--src-plain-http", "--split-size", "40K"); code != 0 {
		t.Fatalf("split export: exit %d %s", code, stderr)
	}
	if code, stdout, _ := ferry(t, "verify", filepath.Join(work, "s.tar.001")); code != 0 || !strings.Contains(stdout, "OK") {
		t.Fatalf("verify of a split set: exit %d %s", code, stdout)
	}
	if code, _, stderr := ferry(t, "export", ref, "-o", filepath.Join(work, "b.tar"), "--src-plain-http"); code != 0 {
		t.Fatalf("tar export: exit %d %s", code, stderr)
	}
	f, err := os.Open(filepath.Join(work, "b.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stdin := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = stdin }()
	code, stdout, stderr := ferry(t, "import", "-", "--to", dst.Host+"/piped", "--dest-plain-http")
	if code != 0 || !strings.Contains(stdout, "tags:      1 set") {
		t.Fatalf("import from stdin: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

func TestLoginLogoutAndAuthFile(t *testing.T) {
	const robot, secret = "robot$mirror+ci", "p@ss:word"
	dst := regtest.NewWith(t, regtest.Debian, regtest.Options{Users: map[string]string{robot: secret}})
	authFile := filepath.Join(t.TempDir(), "auth.json")
	withStdin := func(s string) func() {
		r, w, _ := os.Pipe()
		w.WriteString(s)
		w.Close()
		old := os.Stdin
		os.Stdin = r
		return func() { os.Stdin = old }
	}

	// The shell ate "$mirror": the registry refuses, and ferry says why.
	restore := withStdin(secret + "\n")
	code, _, stderr := ferry(t, "login", dst.Host, "-u", "robot+ci", "--password-stdin", "--plain-http", "--authfile", authFile)
	restore()
	if code != exitFailure || !strings.Contains(stderr, "single quotes") || strings.Contains(stderr, secret) {
		t.Fatalf("failed login: exit %d\n%s", code, stderr)
	}

	restore = withStdin(secret + "\n")
	code, stdout, stderr := ferry(t, "login", dst.Host, "-u", robot, "--password-stdin", "--plain-http", "--authfile", authFile)
	restore()
	if code != 0 || !strings.Contains(stdout, "Login Succeeded") {
		t.Fatalf("login: exit %d\n%s%s", code, stdout, stderr)
	}
	data, _ := os.ReadFile(authFile)
	var cfg struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if got, _ := base64.StdEncoding.DecodeString(cfg.Auths[dst.Host].Auth); string(got) != robot+":"+secret {
		t.Fatalf("auth file holds %q for %s", got, dst.Host)
	}

	// The saved credentials work, from --authfile and from REGISTRY_AUTH_FILE.
	src := regtest.New(t, regtest.Distribution)
	set, _ := imagegen.Generate(imagegen.Options{Apps: 1})
	set.Push(context.Background(), src.Host)
	out := filepath.Join(t.TempDir(), "b")
	if code, _, stderr := ferry(t, "export", set.Images[1].Reference(src.Host), "-o", out, "--src-plain-http"); code != 0 {
		t.Fatal(stderr)
	}
	if code, _, stderr := ferry(t, "import", out, "--to", dst.Host+"/a", "--dest-plain-http", "--authfile", authFile); code != 0 {
		t.Fatalf("import with --authfile: %s", stderr)
	}
	t.Setenv("REGISTRY_AUTH_FILE", authFile)
	if code, _, stderr := ferry(t, "import", out, "--to", dst.Host+"/b", "--dest-plain-http"); code != 0 {
		t.Fatalf("import with REGISTRY_AUTH_FILE: %s", stderr)
	}
	if code, _, _ := ferry(t, "logout", dst.Host); code != 0 {
		t.Fatal("logout failed")
	}
	data, _ = os.ReadFile(authFile)
	if strings.Contains(string(data), dst.Host) {
		t.Fatalf("logout left the credentials:\n%s", data)
	}
	code, _, stderr = ferry(t, "import", out, "--to", dst.Host+"/c", "--dest-plain-http")
	if code != exitFailure || !strings.Contains(stderr, "--dest-creds") {
		t.Fatalf("import after logout: exit %d\n%s", code, stderr)
	}
}

func TestTLSVerifyFlag(t *testing.T) {
	t.Parallel()
	src := regtest.NewWith(t, regtest.Distribution, regtest.Options{TLS: true})
	out := filepath.Join(t.TempDir(), "b")
	ref := src.Host + "/nothing/here:1"
	// Verification is on by default: the unknown CA is refused.
	code, _, stderr := ferry(t, "export", ref, "-o", out)
	if code != exitFailure || !strings.Contains(stderr, "certificate") {
		t.Fatalf("default verification: exit %d\n%s", code, stderr)
	}
	// --src-tls-verify=false gets past TLS to the registry's own answer.
	code, _, stderr = ferry(t, "export", ref, "-o", out, "--src-tls-verify=false")
	if code != exitFailure || strings.Contains(stderr, "certificate") || !strings.Contains(stderr, "not found") {
		t.Fatalf("--src-tls-verify=false: exit %d\n%s", code, stderr)
	}
	// --src-cert-dir with the CA works too.
	code, _, stderr = ferry(t, "export", ref, "-o", out, "--src-cert-dir", src.CertDir)
	if code != exitFailure || strings.Contains(stderr, "certificate") {
		t.Fatalf("--src-cert-dir: exit %d\n%s", code, stderr)
	}
}

// tarOf writes the directory bundle dir as a tarball in ferry's order
// (metadata, the signature if there is one, manifests, then the other
// blobs), with the metadata files replaced by those in replace.
func tarOf(t *testing.T, dir string, replace map[string][]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "b.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string) {
		data, ok := replace[name]
		if !ok {
			var err error
			if data, err = os.ReadFile(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o444})
		tw.Write(data)
	}
	for _, name := range []string{layout.FileOCILayout, layout.FileIndex, layout.FileBundle, layout.FileSignature} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil || replace[name] != nil {
			add(name)
		}
	}
	blobs, _ := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	isManifest := func(path string) bool {
		data, _ := os.ReadFile(path)
		var m struct {
			MediaType string `json:"mediaType"`
		}
		return json.Unmarshal(data, &m) == nil && layout.IsManifest(m.MediaType)
	}
	sort.SliceStable(blobs, func(i, j int) bool { return isManifest(blobs[i]) && !isManifest(blobs[j]) })
	for _, b := range blobs {
		add("blobs/sha256/" + filepath.Base(b))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// A bundle whose index.json or ferry.json does not parse has failed
// verification: exit 3 from verify, inspect and import, whatever its form,
// with the file named once and a ferry.json that does not parse never taken
// for a plain OCI layout.
func TestMalformedMetadataExitsThreeInEveryForm(t *testing.T) {
	t.Parallel()
	src := regtest.New(t, regtest.Distribution)
	set, _ := imagegen.Generate(imagegen.Options{Apps: 1})
	if err := set.Push(context.Background(), src.Host); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(t.TempDir(), "bundle")
	if code, _, stderr := ferry(t, "export", set.Images[0].Reference(src.Host), "-o", good, "--src-plain-http"); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	for _, file := range []string{layout.FileIndex, layout.FileBundle} {
		garbage := map[string][]byte{file: []byte(`{"mediaType": 7,`)}
		dir := filepath.Join(t.TempDir(), "bundle")
		if err := os.CopyFS(dir, os.DirFS(good)); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, file), 0o644)
		os.WriteFile(filepath.Join(dir, file), garbage[file], 0o644)
		for form, path := range map[string]string{"directory": dir, "tarball": tarOf(t, good, garbage)} {
			for _, cmd := range [][]string{{"verify", path}, {"inspect", path}, {"import", path, "--to", "127.0.0.1:1/x", "--dest-plain-http"}} {
				code, stdout, stderr := ferry(t, cmd...)
				if code != exitInvalid {
					t.Errorf("%s %s with a bad %s: exit %d, want %d\n%s%s", cmd[0], form, file, code, exitInvalid, stdout, stderr)
				}
				if !strings.Contains(stderr, file) || strings.Contains(stderr, file+": "+file) || strings.Contains(stderr, "entry "+file+": "+file) {
					t.Errorf("%s %s with a bad %s: the message should name the file once:\n%s", cmd[0], form, file, stderr)
				}
				if strings.Contains(stdout+stderr, "plain OCI layout") {
					t.Errorf("%s %s: a ferry.json that does not parse is not a plain OCI layout:\n%s%s", cmd[0], form, stdout, stderr)
				}
			}
		}
	}
}

// An invalid reference name inside a bundle is the bundle's fault: verify
// reports it and import refuses it, both with exit 3 (import exited 2, and
// verify said OK).
func TestInvalidNameInsideABundleExitsThree(t *testing.T) {
	t.Parallel()
	src := regtest.New(t, regtest.Distribution)
	set, _ := imagegen.Generate(imagegen.Options{Apps: 1})
	if err := set.Push(context.Background(), src.Host); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "b")
	if code, _, stderr := ferry(t, "export", set.Images[1].Reference(src.Host), "-o", dir, "--src-plain-http"); code != 0 {
		t.Fatal(stderr)
	}
	for _, bad := range []string{src.Host + "/Team/App1:v1", src.Host + "/team/app1:-v1"} {
		d := filepath.Join(t.TempDir(), "b")
		os.CopyFS(d, os.DirFS(dir))
		p := filepath.Join(d, layout.FileIndex)
		good := set.Images[1].Reference(src.Host)
		data := strings.ReplaceAll(string(mustRead(t, p)), good, bad)
		os.Chmod(p, 0o644)
		os.WriteFile(p, []byte(data), 0o644)
		for _, cmd := range [][]string{{"verify", d}, {"import", d, "--to", "127.0.0.1:1/x", "--dest-plain-http"}} {
			if code, _, stderr := ferry(t, cmd...); code != exitInvalid || !strings.Contains(stderr, "invalid") {
				t.Errorf("%s of a bundle naming %q: exit %d, want %d\n%s", cmd[0], bad, code, exitInvalid, stderr)
			}
		}
	}
}
