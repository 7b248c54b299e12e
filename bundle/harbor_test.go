package bundle_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/ferry-oci/ferry/bundle/registry/harbor"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

// harborFront puts Harbor's rules in front of a real registry, with the
// documented answers of the parts of Harbor's API ferry uses: projects must
// exist (POST /api/v2.0/projects creates them, HEAD
// /api/v2.0/projects?project_name= tells, DELETE removes them), a project's
// summary gives its storage quota, its immutabletagrules its immutable tag
// rules, and GET /api/v2.0/projects/{name} its content-trust metadata.
// Registry requests without credentials are challenged for basic auth; a
// request into a project that does not exist gets a bare 401, as Harbor
// answers even an admin; a user in noPush may create projects but not push
// into the ones it created (a system robot with no role in them), and
// "reader" may not push at all. Tags are immutable once set (any tag, as a
// "**" rule would), and the project "locked" has a policy that blocks pulls
// (412 on manifest reads).
type harborFront struct {
	mu       sync.Mutex
	projects map[string]bool
	creator  map[string]string
	quota    map[string]int64 // storage quota in bytes; absent: no quota
	rules    map[string]string
	cosign   map[string]bool
	noPush   map[string]bool
	posts    int
	uploads  map[string]int // POST .../blobs/uploads/ per user
	host     string
}

const harborAdmin, harborPassword = "admin", "Harbor12345"

func newHarborFront(t *testing.T, reg *regtest.Server) *harborFront {
	h := &harborFront{projects: map[string]bool{}, creator: map[string]string{}, quota: map[string]int64{}, rules: map[string]string{},
		cosign: map[string]bool{}, noPush: map[string]bool{}, uploads: map[string]int{}}
	h.host = regtest.NewProxy(t, reg, func(w http.ResponseWriter, r *http.Request) bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/api/v2.0/") {
			return h.api(w, r)
		}
		return h.registry(w, r, reg)
	})
	return h
}

// api answers the parts of Harbor's API ferry uses.
func (h *harborFront) api(w http.ResponseWriter, r *http.Request) bool {
	user, pass, authed := r.BasicAuth()
	admin := authed && user == harborAdmin && pass == harborPassword
	path := strings.TrimPrefix(r.URL.Path, "/api/v2.0/projects")
	name, sub, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	switch {
	case path == "" && r.Method == http.MethodPost:
		h.posts++
		if !admin && !h.noPush[user] {
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
		h.projects[req.Name], h.creator[req.Name] = true, user
		w.WriteHeader(http.StatusCreated)
	case path == "" && r.Method == http.MethodHead:
		if !h.projects[r.URL.Query().Get("project_name")] {
			w.WriteHeader(http.StatusNotFound)
		}
	case !h.projects[name]:
		http.Error(w, `{"errors":[{"code":"NOT_FOUND","message":"project `+name+` not found"}]}`, http.StatusNotFound)
	case sub == "summary" && r.Method == http.MethodGet:
		hard, ok := h.quota[name]
		if !ok {
			hard = -1
		}
		fmt.Fprintf(w, `{"repo_count":0,"quota":{"hard":{"storage":%d},"used":{"storage":0}}}`, hard)
	case sub == "immutabletagrules" && r.Method == http.MethodGet:
		rules := h.rules[name]
		if rules == "" {
			rules = "[]"
		}
		fmt.Fprint(w, rules)
	case sub == "" && r.Method == http.MethodGet:
		fmt.Fprintf(w, `{"name":%q,"metadata":{"public":"false","enable_content_trust_cosign":"%v"}}`, name, h.cosign[name])
	case sub == "" && r.Method == http.MethodDelete:
		delete(h.projects, name)
	default:
		http.Error(w, `{"errors":[{"code":"NOT_FOUND","message":"no such API"}]}`, http.StatusNotFound)
	}
	return true
}

// registry applies Harbor's rules to registry requests, or lets them
// through to the real registry.
func (h *harborFront) registry(w http.ResponseWriter, r *http.Request, reg *regtest.Server) bool {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/"), "/")
	if !strings.HasPrefix(r.URL.Path, "/v2/") || len(parts) < 3 {
		return false
	}
	user, pass, authed := r.BasicAuth()
	if !authed {
		w.Header().Set("WWW-Authenticate", `Basic realm="harbor"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"unauthorized"}]}`, http.StatusUnauthorized)
		return true
	}
	project := parts[0]
	if !h.projects[project] || (user == harborAdmin && pass != harborPassword) {
		w.WriteHeader(http.StatusUnauthorized) // bare, as Harbor answers
		return true
	}
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/") {
		h.uploads[user]++
		if user == "reader" || (h.noPush[user] && h.creator[project] == user) {
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
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
}

// movedTagBundle exports another team/app1:v1 than exportSet's: importing
// it moves that tag.
func movedTagBundle(t *testing.T) string {
	t.Helper()
	src := regtest.New(t, regtest.Distribution)
	v2, _ := imagegen.Generate(imagegen.Options{Version: 2})
	v2.Images = v2.Images[1:2] // team/app1
	v2.Images[0].Tag = "v1"
	if err := v2.Push(context.Background(), src.Host); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "v2")
	if _, err := bundle.Export(context.Background(), bundle.ExportOptions{References: []string{v2.Images[0].Reference(src.Host)}, Output: out, Source: plain}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHarborRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	set, out, reg, h, admin := harborSetup(t)

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
	out2 := movedTagBundle(t)
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

// With --harbor, what Harbor's rules would refuse after the first push is
// refused before it, each case leaving the registry behind the front as it
// was: a project's quota too small for the new blobs, a project that does
// not exist (told apart from refused credentials), a project created by an
// account that may not push into it (deleted again), an immutable tag rule
// against a tag move; a 401 to opening an upload is not taken for an
// expired token; and a content trust policy is reported.
func TestHarborChecksBeforeTheFirstPush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	set, out, reg, h, admin := harborSetup(t)
	storage := filepath.Join(reg.Dir, "storage")
	untouched := func(name string, before int) {
		t.Helper()
		if n := countFiles(t, storage); n != before {
			t.Errorf("%s: the registry holds %d files, %d before: something was pushed", name, n, before)
		}
	}
	h.mu.Lock()
	h.projects["small"], h.quota["small"] = true, 100<<10
	h.projects["mirror"], h.projects["ro"], h.projects["signed"], h.cosign["signed"] = true, true, true, true
	h.noPush["robot$creator"] = true
	h.mu.Unlock()

	for _, dry := range []bool{true, false} {
		_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: h.host + "/small", Dest: admin, Harbor: true, DryRun: dry})
		if !errors.Is(err, bundle.ErrQuota) || !strings.Contains(err.Error(), "small: needs") || !strings.Contains(err.Error(), "100.0 KiB free") {
			t.Errorf("quota (dry run %v): %v", dry, err)
		}
	}
	untouched("quota", 0)

	_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: h.host + "/nope", Dest: admin, Harbor: true})
	if !failedOn(err, registry.Destination) || !strings.Contains(err.Error(), "Harbor has no project nope") {
		t.Errorf("a missing project: %v", err)
	}
	wrong := registry.Options{PlainHTTP: true, Credentials: harborAdmin + ":wrong"}
	_, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: h.host + "/mirror", Dest: wrong, Harbor: true})
	if !failedOn(err, registry.Destination) || !strings.Contains(err.Error(), "the projects exist: the credentials were refused") {
		t.Errorf("wrong credentials for a project that exists: %v", err)
	}
	untouched("missing project, wrong credentials", 0)

	robot := registry.Options{PlainHTTP: true, Credentials: "robot$creator:secret"}
	_, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: h.host + "/fresh", Dest: robot, CreateProjects: true})
	h.mu.Lock()
	left := h.projects["fresh"]
	h.mu.Unlock()
	if !failedOn(err, registry.Destination) || !strings.Contains(err.Error(), "created Harbor project fresh, but these credentials may not push to it") || left {
		t.Errorf("a project created in vain: %v (still there: %v)", err, left)
	}
	untouched("created but not writable", 0)

	_, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: h.host + "/ro", Dest: registry.Options{PlainHTTP: true, Credentials: "reader:secret"}, Jobs: 1})
	h.mu.Lock()
	posts := h.uploads["reader"]
	h.mu.Unlock()
	if err == nil || posts != 1 {
		t.Errorf("no push rights: %v; %d upload(s) opened, want 1 (a 401 to opening one is not an expired token)", err, posts)
	}

	// Content trust: reported per project.
	dry, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: h.host + "/signed", Dest: admin, Harbor: true, DryRun: true})
	if err != nil || len(dry.Policies) != 1 || dry.Policies[0].Trust != "cosign" || len(dry.Policies[0].Unsigned) != len(set.Images) {
		t.Errorf("content trust: %v %+v", err, dry.Policies)
	}

	// Immutable tags: a move the rules forbid is refused before any push.
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: h.host + "/mirror", Dest: admin, Harbor: true}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.rules["mirror"] = `[{"id":1,"disabled":false,"action":"immutable","template":"immutable_template",
		"tag_selectors":[{"kind":"doublestar","decoration":"matches","pattern":"v*"}],
		"scope_selectors":{"repository":[{"kind":"doublestar","decoration":"repoMatches","pattern":"team/**"}]}}]`
	h.mu.Unlock()
	out2 := movedTagBundle(t)
	before := countFiles(t, storage)
	for _, dryRun := range []bool{true, false} {
		_, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out2, To: h.host + "/mirror", Dest: admin, Harbor: true, DryRun: dryRun})
		if !errors.Is(err, bundle.ErrImmutableTag) || !strings.Contains(err.Error(), "mirror/team/app1:v1") {
			t.Errorf("an immutable tag move (dry run %v): %v", dryRun, err)
		}
	}
	untouched("immutable tag", before)
}

func TestImmutableRuleMatching(t *testing.T) {
	t.Parallel()
	rule := func(repoDec, repoPat, tagDec, tagPat string) []harbor.Rule {
		return []harbor.Rule{{TagSelectors: []harbor.Selector{{Kind: "doublestar", Decoration: tagDec, Pattern: tagPat}},
			ScopeSelectors: map[string][]harbor.Selector{"repository": {{Kind: "doublestar", Decoration: repoDec, Pattern: repoPat}}}}}
	}
	for _, tt := range []struct {
		rules     []harbor.Rule
		repo, tag string
		want      bool
	}{
		{rule("repoMatches", "**", "matches", "**"), "team/app", "v1", true},
		{rule("repoMatches", "team/*", "matches", "v*"), "team/app", "v1", true},
		{rule("repoMatches", "team/*", "matches", "v*"), "team/app", "latest", false},
		{rule("repoMatches", "team/*", "matches", "v*"), "team/sub/app", "v1", false},
		{rule("repoExcludes", "team/**", "matches", "**"), "team/app", "v1", false},
		{rule("repoMatches", "**", "excludes", "dev-*"), "app", "dev-1", false},
		{rule("repoMatches", "**", "excludes", "dev-*"), "app", "1.0", true},
		{rule("repoMatches", "", "matches", "{1.0,2.0}"), "app", "2.0", true},
		{append(rule("repoMatches", "**", "matches", "**"), harbor.Rule{}), "a", "b", true},
		{[]harbor.Rule{{Disabled: true, TagSelectors: []harbor.Selector{{Pattern: "**"}}, ScopeSelectors: map[string][]harbor.Selector{"repository": {{Pattern: "**"}}}}}, "a", "b", false},
	} {
		if got := harbor.Immutable(tt.rules, tt.repo, tt.tag); got != tt.want {
			t.Errorf("Immutable(%+v, %q, %q) = %v, want %v", tt.rules, tt.repo, tt.tag, got, tt.want)
		}
	}
}

// harborSetup exports the test set, and puts a Harbor front in front of a
// fresh destination registry, with its admin's options.
func harborSetup(t *testing.T) (*imagegen.Set, string, *regtest.Server, *harborFront, registry.Options) {
	t.Helper()
	_, set, out := exportSet(t, regtest.Distribution)
	reg := regtest.New(t, regtest.Distribution)
	return set, out, reg, newHarborFront(t, reg), registry.Options{PlainHTTP: true, Credentials: harborAdmin + ":" + harborPassword}
}
