package bundle_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

// oras runs the real oras CLI (plain HTTP) and returns its output.
func oras(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(regtest.Tool(t, "oras"), append(args, "--plain-http")...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("oras %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// orasAttach attaches a one-file artifact of artifactType to subject
// (host/repo@digest) and returns the artifact's digest.
func orasAttach(t *testing.T, subject, artifactType, content string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file.json"), []byte(content), 0o644)
	out := oras(t, dir, "attach", "--artifact-type", artifactType, "--format", "json", subject, "file.json:application/json")
	var desc struct {
		Digest string `json:"digest"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &desc); err != nil || desc.Digest == "" {
		t.Fatalf("oras attach said %q: %v", out, err)
	}
	return desc.Digest
}

// discoverTree is what oras discover shows of subject: every referrer, at
// every depth, as "depth artifactType digest", sorted.
func discoverTree(t *testing.T, subject string) []string {
	t.Helper()
	out := oras(t, t.TempDir(), "discover", "--format", "json", subject)
	var tree struct {
		Referrers []node `json:"referrers"`
	}
	if err := json.Unmarshal([]byte(out), &tree); err != nil {
		t.Fatalf("oras discover said %q: %v", out, err)
	}
	var lines []string
	var walk func(ns []node, depth int)
	walk = func(ns []node, depth int) {
		for _, n := range ns {
			lines = append(lines, strings.Repeat("  ", depth)+n.ArtifactType+" "+n.Digest)
			walk(n.Referrers, depth+1)
		}
	}
	walk(tree.Referrers, 0)
	slices.Sort(lines)
	return lines
}

type node struct {
	Digest       string `json:"digest"`
	ArtifactType string `json:"artifactType"`
	Referrers    []node `json:"referrers"`
}

// An SBOM attached with the real oras CLI, and a signature on that SBOM,
// cross with their image: oras discover shows the same tree at the
// destination, through a directory and through a tarball. A destination
// whose referrers index of the image already lists another artifact keeps
// it.
func TestOrasReferrersTravel(t *testing.T) {
	t.Parallel()
	src, set, refs := seed(t, regtest.Distribution, imagegen.Options{Apps: 1})
	app := set.Images[1] // team/app1
	subject := src.Host + "/" + app.Repository + "@" + app.Root.Digest.String()
	sbom := orasAttach(t, subject, "application/vnd.example.sbom.v1+json", `{"packages":["a","b"]}`)
	orasAttach(t, src.Host+"/"+app.Repository+"@"+sbom, "application/vnd.example.signature.v1+json", `{"sig":"over the sbom"}`)
	want := discoverTree(t, subject)
	if len(want) != 2 {
		t.Fatalf("the source shows %v, want an SBOM and its signature", want)
	}

	dst := regtest.New(t, regtest.Debian)
	// The destination already has the image, with another artifact
	// attached: the import must merge, not replace.
	local, _ := imagegen.Generate(imagegen.Options{Apps: 1, Namespace: "mirror"})
	if err := local.Push(context.Background(), dst.Host); err != nil {
		t.Fatal(err)
	}
	destSubject := dst.Host + "/mirror/" + app.Repository + "@" + app.Root.Digest.String()
	note := orasAttach(t, destSubject, "application/vnd.example.note.v1+json", `{"note":"made on the air-gapped side"}`)

	for _, form := range []string{"bundle", "bundle.tar"} {
		out := filepath.Join(t.TempDir(), form)
		res, err := bundle.Export(context.Background(), bundle.ExportOptions{References: refs, Output: out, Source: plain})
		if err != nil {
			t.Fatal(err)
		}
		if res.Summary.Referrers != 2 {
			t.Fatalf("%s: exported %d referrers, want 2", form, res.Summary.Referrers)
		}
		imp, err := bundle.Import(context.Background(), bundle.ImportOptions{Bundle: out, To: dst.Host + "/mirror", Dest: plain})
		if err != nil {
			t.Fatalf("%s: import: %v", form, err)
		}
		got := discoverTree(t, destSubject)
		for _, line := range want {
			if !slices.Contains(got, line) {
				t.Errorf("%s: the destination shows %v, missing %q", form, got, line)
			}
		}
		if !slices.ContainsFunc(got, func(l string) bool { return strings.HasSuffix(l, note) }) {
			t.Errorf("%s: the destination's own artifact %s is gone: %v", form, note, got)
		}
		if form == "bundle.tar" && (imp.Summary.ReferrersPushed != 0 || imp.Summary.ReferrersPresent != 2) {
			t.Errorf("a second import pushed %d referrers and found %d there, want 0 and 2", imp.Summary.ReferrersPushed, imp.Summary.ReferrersPresent)
		}
	}
}
