package bundle_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"oras.land/oras-go/v2/registry/remote"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

// harborFront puts Harbor's rules in front of a real registry: projects
// must exist (POST /api/v2.0/projects creates them, as Harbor's API does),
// tags are immutable once set, and the project "locked" has a policy that
// blocks pulls (412 on manifest reads).
type harborFront struct {
	mu       sync.Mutex
	projects map[string]bool
	posts    int
	host     string
}

const harborAdmin, harborPassword = "admin", "Harbor12345"

func newHarborFront(t *testing.T, reg *regtest.Server) *harborFront {
	h := &harborFront{projects: map[string]bool{}}
	h.host = regtest.NewProxy(t, reg, func(w http.ResponseWriter, r *http.Request) bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		if r.URL.Path == "/api/v2.0/projects" && r.Method == http.MethodPost {
			h.posts++
			if u, p, ok := r.BasicAuth(); !ok || u != harborAdmin || p != harborPassword {
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"unauthorized"}]}`, http.StatusUnauthorized)
				return true
			}
			var req struct {
				Name string `json:"project_name"`
			}
			json.NewDecoder(r.Body).Decode(&req)
			if h.projects[req.Name] {
				http.Error(w, `{"errors":[{"code":"CONFLICT","message":"The project named `+req.Name+` already exists"}]}`, http.StatusConflict)
				return true
			}
			h.projects[req.Name] = true
			w.WriteHeader(http.StatusCreated)
			return true
		}
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/"), "/")
		if !strings.HasPrefix(r.URL.Path, "/v2/") || len(parts) < 3 {
			return false
		}
		project := parts[0]
		if !h.projects[project] {
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"project `+project+` not found"}]}`, http.StatusUnauthorized)
			return true
		}
		manifests := strings.Contains(r.URL.Path, "/manifests/")
		ref := parts[len(parts)-1]
		if project == "locked" && manifests && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			http.Error(w, `{"errors":[{"code":"PRECONDITION","message":"current image with 3 vulnerabilities cannot be pulled due to configured policy in 'Prevent images with vulnerability severity of \"Low\" or higher from running.'"}]}`, http.StatusPreconditionFailed)
			return true
		}
		if manifests && r.Method == http.MethodPut && !strings.HasPrefix(ref, "sha256:") {
			check, _ := http.NewRequest(http.MethodHead, "http://"+reg.Host+r.URL.Path, nil)
			check.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json")
			if resp, err := http.DefaultClient.Do(check); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					http.Error(w, `{"errors":[{"code":"PRECONDITION","message":"Failed to process request due to '`+ref+`' configured as immutable."}]}`, http.StatusPreconditionFailed)
					return true
				}
			}
		}
		return false
	})
	return h
}

func TestHarborRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, set, out := exportSet(t, regtest.Distribution)
	reg := regtest.New(t, regtest.Distribution)
	h := newHarborFront(t, reg)
	admin := registry.Options{PlainHTTP: true, Credentials: harborAdmin + ":" + harborPassword}

	// The project does not exist: a clear message, nothing pushed.
	_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: h.host + "/mirror", Dest: admin})
	if err == nil || !strings.Contains(err.Error(), "project") || !strings.Contains(err.Error(), "--create-projects") {
		t.Fatalf("import into a missing project: %v", err)
	}
	// Creating projects needs a user that may.
	_, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: h.host + "/mirror", Dest: registry.Options{PlainHTTP: true, Credentials: "dev:dev"}, CreateProjects: true})
	if err == nil || !strings.Contains(err.Error(), "may not create projects") {
		t.Fatalf("--create-projects as a user who may not: %v", err)
	}
	res, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: h.host + "/mirror", Dest: admin, CreateProjects: true})
	if err != nil {
		t.Fatalf("--create-projects: %v", err)
	}
	if strings.Join(res.ProjectsCreated, ",") != "mirror" {
		t.Fatalf("created %v, want [mirror]", res.ProjectsCreated)
	}
	assertImported(t, set, reg.Host, "mirror")
	// Again: the project exists (409), every tag is already right, so no
	// tag is pushed and immutability never bites.
	res, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: h.host + "/mirror", Dest: admin, CreateProjects: true})
	if err != nil || len(res.ProjectsCreated) != 0 || res.Summary.TagsUnchanged != len(set.Images) {
		t.Fatalf("second import: %v %+v", err, res)
	}

	// A tag that would move is immutable: Harbor says 412, ferry says why.
	src2 := regtest.New(t, regtest.Distribution)
	v2, _ := imagegen.Generate(imagegen.Options{Version: 2})
	v2.Images = v2.Images[1:2] // team/app1
	v2.Images[0].Tag = "v1"
	if err := v2.Push(ctx, src2.Host); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(t.TempDir(), "v2")
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: []string{v2.Images[0].Reference(src2.Host)}, Output: out2, Source: plain}); err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out2, To: h.host + "/mirror", Dest: admin})
	if err == nil || !strings.Contains(err.Error(), "immutable") || !strings.Contains(err.Error(), "team/app1:v1") {
		t.Fatalf("moving an immutable tag: %v", err)
	}

	// A project whose policy blocks pulls answers 412 to manifest reads:
	// the import still pushes and tags everything.
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: h.host + "/locked", Dest: admin, CreateProjects: true}); err != nil {
		t.Fatalf("import into a project that blocks pulls: %v", err)
	}
	for _, img := range set.Images {
		repo, _ := remote.NewRepository(reg.Host + "/locked/" + img.Repository)
		repo.PlainHTTP = true
		if got, err := repo.Resolve(ctx, img.Tag); err != nil || got.Digest != img.Root.Digest {
			t.Errorf("locked/%s:%s: %v %v", img.Repository, img.Tag, got.Digest, err)
		}
	}
}

// orasSig pushes, with the real oras CLI, an artifact under cosign's tag
// for subject (sha256-<hex>.sig), as cosign's tag scheme would, and returns
// its digest.
func orasSig(t *testing.T, repo string, subject digest.Digest, content string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sig.json"), []byte(content), 0o644)
	tag := subject.Algorithm().String() + "-" + subject.Encoded() + ".sig"
	out := oras(t, dir, "push", "--artifact-type", "application/vnd.dev.cosign.artifact.sig.v1+json", "--format", "json", repo+":"+tag, "sig.json:application/vnd.dev.cosign.simplesigning.v1+json")
	var desc struct {
		Digest string `json:"digest"`
	}
	json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &desc)
	return desc.Digest
}

// Harbor's answers around referrers: a project whose policy blocks reads
// (412 to every manifest HEAD and GET) neither stops the import nor makes
// ferry take the signature for absent and fail; and a .sig tag that an
// immutable-tag rule keeps from moving is reported, naming the tag, not
// dropped.
func TestHarborReferrerRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, set, _ := seed(t, regtest.Distribution, imagegen.Options{Apps: 1})
	app := set.Images[1]
	sig1 := orasSig(t, src.Host+"/"+app.Repository, app.Root.Digest, `{"sig":1}`)
	export := func() string {
		out := filepath.Join(t.TempDir(), "b")
		res, err := bundle.Export(ctx, bundle.ExportOptions{References: []string{app.Reference(src.Host)}, Output: out, Source: plain})
		if err != nil || len(res.Plan.Referrers) != 1 {
			t.Fatalf("export: %v, %d referrers", err, len(res.Plan.Referrers))
		}
		return out
	}
	b1 := export()
	reg := regtest.New(t, regtest.Distribution)
	h := newHarborFront(t, reg)
	admin := registry.Options{PlainHTTP: true, Credentials: harborAdmin + ":" + harborPassword}
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: b1, To: h.host + "/locked", Dest: admin, CreateProjects: true}); err != nil {
		t.Fatalf("import into a project whose policy blocks reads: %v", err)
	}
	sigTag := app.Root.Digest.Algorithm().String() + "-" + app.Root.Digest.Encoded() + ".sig"
	repo, _ := remote.NewRepository(reg.Host + "/locked/" + app.Repository)
	repo.PlainHTTP = true
	if got, err := repo.Resolve(ctx, sigTag); err != nil || got.Digest.String() != sig1 {
		t.Fatalf("the signature's tag behind the policy: %v %v, want %s", got.Digest, err, sig1)
	}

	// The same signature again is no move; a new one would move an
	// immutable .sig tag: refused, and said so.
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: b1, To: h.host + "/mirror", Dest: admin, CreateProjects: true}); err != nil {
		t.Fatal(err)
	}
	orasSig(t, src.Host+"/"+app.Repository, app.Root.Digest, `{"sig":2}`)
	_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: export(), To: h.host + "/mirror", Dest: admin})
	if err == nil || !strings.Contains(err.Error(), "immutable") || !strings.Contains(err.Error(), sigTag) {
		t.Fatalf("moving an immutable .sig tag: %v", err)
	}
}
