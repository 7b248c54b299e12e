package bundle_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"oras.land/oras-go/v2/registry/remote"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

// tagAll gives every image of set the tags, at host.
func tagAll(t *testing.T, host string, img imagegen.Image, tags ...string) {
	t.Helper()
	repo, err := remote.NewRepository(host + "/" + img.Repository)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	for _, tag := range tags {
		if err := repo.Tag(context.Background(), img.Root, tag); err != nil {
			t.Fatal(err)
		}
	}
}

// A skopeo sync YAML, in the shape of skopeo's own documentation examples
// (hosts pointed at a test registry, reached as 127.0.0.1 and as
// localhost), selects exactly the tags skopeo would: a tag list, an empty
// list (every tag), a tag regex, a semver range (v-prefixed tags count,
// pre-releases do not); ferry's keys exclude and newest narrow further,
// and the dry run says what matched and why the rest did not. A key ferry
// does not know is an error naming it and its line.
func TestMirrorConfigSelectsWhatSkopeoWould(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, set, _ := seed(t, regtest.Distribution, imagegen.Options{Apps: 3})
	versions := []string{"v1.0.0", "v1.3.0", "v1.4.0", "v1.5.0", "v1.6.1", "v2.0.0", "1.7.0-rc1", "latest"}
	for _, img := range set.Images[1:4] { // team/app1, app2, app3
		tagAll(t, src.Host, img, versions...)
	}
	port := src.Host[strings.LastIndex(src.Host, ":"):]
	config := `# skopeo sync's format, as its documentation shows it
` + src.Host + `:
    tls-verify: false
    images:
        library/base: []
        team/app2:
            - "v1.3.0"
            - "latest"
    images-by-tag-regex:
        team/app1: ^v1\.[0-9]+\.[0-9]+$
    images-by-semver:
        team/app3: ">= 1.4.0, < 2"
localhost` + port + `:
    tls-verify: false
    images-by-semver:
        team/app1: ">= 1.0"
    exclude: ["^v1\\.5"]
    newest: 2
    all-tags: [library/multi]
    platforms: [linux/arm64]
    referrers: false
`
	multi := set.Images[len(set.Images)-2] // library/multi
	orasAttach(t, src.Host+"/"+multi.Repository+"@"+multi.Root.Digest.String(), "application/vnd.example.sbom.v1+json", `{"a":1}`)
	cfg, err := bundle.ReadMirrorConfig(strings.NewReader(config), "mirror.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := bundle.Export(ctx, bundle.ExportOptions{Config: cfg, Output: filepath.Join(t.TempDir(), "b"), Source: plain, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, img := range res.Plan.Images {
		key := img.Source.Registry + "/" + img.Source.Repository
		got[key] = append(got[key], img.Source.Tag)
	}
	want := map[string][]string{
		src.Host + "/library/base":            {"1"},
		src.Host + "/team/app2":               {"latest", "v1.3.0"},
		src.Host + "/team/app1":               {"v1.0.0", "v1.3.0", "v1.4.0", "v1.5.0", "v1.6.1"},
		src.Host + "/team/app3":               {"v1.4.0", "v1.5.0", "v1.6.1"},
		"localhost" + port + "/team/app1":     {"v1.6.1", "v2.0.0"},
		"localhost" + port + "/library/multi": {"1"},
	}
	for k, w := range want {
		g := got[k]
		sort.Strings(g)
		if !slices.Equal(g, w) {
			t.Errorf("%s: selected %v, want %v", k, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("selected repositories %v, want %v", got, want)
	}
	// The entry's platforms and referrers: false apply to its images.
	for _, img := range res.Plan.Images {
		if img.Source.Repository == "library/multi" && (img.Selection == nil || strings.Join(img.Selection.Kept, ",") != "linux/arm64") {
			t.Errorf("library/multi: selection %+v, want linux/arm64 only", img.Selection)
		}
	}
	if len(res.Plan.Referrers) != 0 {
		t.Errorf("referrers: false carried %d referrers", len(res.Plan.Referrers))
	}
	for _, e := range res.Entries {
		if e.Repository == "localhost"+port+"/team/app1" && (!strings.Contains(e.Excluded["v1.5.0"], "excluded by") || !strings.Contains(e.Excluded["v1.4.0"], "newest 2") || !strings.Contains(e.Excluded["1.7.0-rc1"], "semver")) {
			t.Errorf("the dry run's reasons: %v", e.Excluded)
		}
	}

	_, err = bundle.ReadMirrorConfig(strings.NewReader(strings.Replace(config, "tls-verify: false\n    images-by-semver", "tls-verfy: false\n    images-by-semver", 1)), "mirror.yaml")
	if !errors.Is(err, bundle.ErrMirrorConfig) || !strings.Contains(err.Error(), `"tls-verfy"`) || !strings.Contains(err.Error(), "mirror.yaml:14:") {
		t.Errorf("an unknown key: %v", err)
	}
}

// A Helm chart pushed to an OCI registry with the real helm travels as
// the artifact it is: helm pull fetches it from the destination.
func TestHelmChartTravels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	helm := regtest.Tool(t, "helm")
	src := regtest.New(t, regtest.Distribution)
	dst := regtest.New(t, regtest.Debian)
	work := t.TempDir()
	env := append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(work, "cache"), "HELM_CONFIG_HOME="+filepath.Join(work, "config"),
		"HELM_DATA_HOME="+filepath.Join(work, "data"), "HELM_REGISTRY_CONFIG="+filepath.Join(work, "registry.json"))
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(helm, args...)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("create", "mychart")
	run("package", "mychart")
	run("push", "mychart-0.1.0.tgz", "oci://"+src.Host+"/charts", "--plain-http")
	out := filepath.Join(t.TempDir(), "b")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: []string{src.Host + "/charts/mychart:0.1.0"}, Output: out, Source: plain}); err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/m", Dest: plain}); err != nil {
		t.Fatal(err)
	}
	pulled := filepath.Join(work, "pulled")
	os.MkdirAll(pulled, 0o755)
	run("pull", "oci://"+dst.Host+"/m/charts/mychart", "--version", "0.1.0", "--plain-http", "--destination", pulled)
	if _, err := os.Stat(filepath.Join(pulled, "mychart-0.1.0.tgz")); err != nil {
		t.Fatalf("helm pull at the destination: %v", err)
	}
}
