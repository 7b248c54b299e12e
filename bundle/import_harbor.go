package bundle

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/bundle/registry/harbor"
)

// Sentinel errors of Harbor's rules, checked before the first push.
var (
	// ErrQuota: the new blobs of a project do not fit its storage quota.
	ErrQuota = errors.New("Harbor project quota too small")
	// ErrImmutableTag: an immutable tag rule forbids a tag move.
	ErrImmutableTag = errors.New("immutable tags would move")
)

// Policy is what a Harbor project's content trust makes of the bundle.
type Policy struct {
	Project string
	// Trust names the policy: "cosign" or "notary".
	Trust string
	// Unsigned lists the images it would keep from being pulled: no cosign
	// signature in the bundle or at the destination. Empty: satisfied.
	Unsigned []string
}

// harborChecks runs, before the first push, what Harbor's rules would
// refuse once ferry had started: each project's quota against the bytes
// the import adds to it, and its immutable tag rules against the tags it
// moves; and it reports, per project, whether a content trust policy is
// satisfied by the signatures the bundle carries.
func (imp *importer) harborChecks(ctx context.Context, p *importPlan, targets []Target, res *ImportResult) error {
	api := harbor.NewAPI(imp.c, imp.dest.Registry)
	projects := projectsOf(targets)
	if err := imp.checkQuotas(ctx, api, p, res, projects); err != nil {
		return err
	}
	if err := imp.checkImmutable(ctx, api, res.Tags, projects); err != nil {
		return err
	}
	for _, project := range projects {
		cosign, notary, err := api.ContentTrust(ctx, project)
		if err != nil {
			return err
		}
		if !cosign && !notary {
			continue
		}
		pol := Policy{Project: project, Trust: "cosign"}
		if !cosign {
			pol.Trust = "notary"
		}
		for _, t := range targets {
			if harbor.Project(t.Dest.Repository) == project && t.Dest.Tag != "" && (!cosign || !signedByCosign(t, p)) {
				pol.Unsigned = append(pol.Unsigned, t.Dest.String())
			}
		}
		res.Policies = append(res.Policies, pol)
	}
	return nil
}

// signedByCosign reports whether the bundle carries, or the destination
// holds, a cosign signature of t's image.
func signedByCosign(t Target, p *importPlan) bool {
	for _, r := range p.referrers {
		if r.Dest.Repository == t.Dest.Repository && r.Subject == t.Root().Digest && r.Kind() == "cosign signature" {
			return true
		}
	}
	return false
}

func projectsOf(targets []Target) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range targets {
		if p := harbor.Project(t.Dest.Repository); !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// checkQuotas refuses an import whose new bytes do not fit a project's
// storage quota, saying what is needed and free per project. A blob counts
// once per project, as Harbor counts it: not when a repository of the
// project holds it already, nor when it is mounted from one.
func (imp *importer) checkQuotas(ctx context.Context, api *harbor.API, p *importPlan, res *ImportResult, projects []string) error {
	have := map[string]map[digest.Digest]bool{}
	for _, rb := range res.Present {
		project := harbor.Project(rb.Repository)
		if have[project] == nil {
			have[project] = map[digest.Digest]bool{}
		}
		have[project][rb.Desc.Digest] = true
	}
	need := map[string]int64{}
	add := func(repo string, d digest.Digest, size int64) {
		project := harbor.Project(repo)
		if have[project] == nil {
			have[project] = map[digest.Digest]bool{}
		}
		if !have[project][d] {
			have[project][d] = true
			need[project] += size
		}
	}
	for _, rb := range p.missing {
		add(rb.Repository, rb.Desc.Digest, rb.Desc.Size)
	}
	for _, rb := range res.Mounted {
		if from, ok := imp.mountedFrom.Load(inRepo{rb.Repository, rb.Desc.Digest}); !ok || harbor.Project(from.(string)) != harbor.Project(rb.Repository) {
			add(rb.Repository, rb.Desc.Digest, rb.Desc.Size)
		}
	}
	for _, r := range p.repos {
		for _, d := range r.descs {
			if p.manifestsMissing.has(inRepo{r.name, d.Digest}) {
				add(r.name, d.Digest, d.Size)
			}
		}
	}
	for _, r := range p.referrers {
		if !p.referrersThere[r.key()] {
			add(r.Dest.Repository, r.Desc.Digest, r.Desc.Size)
		}
	}
	var short []string
	for _, project := range projects {
		q, err := api.ProjectQuota(ctx, project)
		if err != nil {
			return err
		}
		if free := q.Free(); free >= 0 && need[project] > free {
			short = append(short, fmt.Sprintf("%s: needs %s, %s free (quota %s, %s used)", project, HumanBytes(need[project]), HumanBytes(free), HumanBytes(q.Hard), HumanBytes(q.Used)))
		}
	}
	if len(short) > 0 {
		return fmt.Errorf("%w; nothing was pushed:\n  - %s\nraise the projects' quotas in Harbor, or import fewer images at a time", ErrQuota, strings.Join(short, "\n  - "))
	}
	return nil
}

// checkImmutable refuses, before any push, a tag move that a project's
// immutable tag rules forbid.
func (imp *importer) checkImmutable(ctx context.Context, api *harbor.API, tags []TagAction, projects []string) error {
	rules := map[string][]harbor.Rule{}
	for _, project := range projects {
		r, err := api.ImmutableRules(ctx, project)
		if err != nil {
			return err
		}
		rules[project] = r
	}
	var refused []string
	for _, a := range tags {
		d := a.Target.Dest
		if a.Current == "" || a.Current == a.Target.Root().Digest {
			continue // a new tag, or one already right: no move
		}
		project := harbor.Project(d.Repository)
		if harbor.Immutable(rules[project], strings.TrimPrefix(d.Repository, project+"/"), d.Tag) {
			refused = append(refused, fmt.Sprintf("%s points at %s; the bundle has %s", d, a.Current, a.Target.Root().Digest))
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("%w: an immutable tag rule of the project keeps these tags where they are; nothing was pushed:\n  - %s\nimport under other tags (another --to prefix), or change the project's immutable tag rules",
			ErrImmutableTag, strings.Join(refused, "\n  - "))
	}
	return nil
}

// probeCreated checks, before the first push, that the credentials may
// push to the projects this import just created (a system robot may create
// a project and get no role in it). If not, it deletes those projects,
// empty, and says so.
func (imp *importer) probeCreated(ctx context.Context, targets []Target, created []string) error {
	for _, project := range created {
		for _, t := range targets {
			if harbor.Project(t.Dest.Repository) != project {
				continue
			}
			repo, err := imp.repo(t.Dest.Repository)
			if err != nil {
				return err
			}
			if err := imp.c.ProbeUpload(ctx, repo); err != nil {
				if st := registry.Status(err); st != http.StatusUnauthorized && st != http.StatusForbidden {
					return err
				}
				return fmt.Errorf("%w: created Harbor project %s, but these credentials may not push to it (a system robot that creates a project gets no role in it): give the account a role in the project, or create the project first; ferry deletes the empty project(s) it created (%s)",
					err, project, strings.Join(created, ", "))
			}
			break
		}
	}
	return nil
}

// deleteCreated deletes the projects this import created, when it stops
// before pushing anything into them: no empty project is left behind in
// vain.
func (imp *importer) deleteCreated(ctx context.Context, created []string) {
	api := harbor.NewAPI(imp.c, imp.dest.Registry)
	for _, p := range created {
		if err := api.DeleteProject(context.WithoutCancel(ctx), p); err != nil {
			imp.prog.Logf("could not delete the empty project %s ferry created: %v", p, err)
		} else {
			imp.prog.Logf("deleted the empty Harbor project %s it had created", p)
		}
	}
}

// explainUnauthorized asks Harbor, after a 401, whether the projects exist,
// and says which it is: a project missing (Harbor answers a bare 401 for
// one, even to an admin), or credentials refused.
func (imp *importer) explainUnauthorized(ctx context.Context, targets []Target, err error) error {
	var re *registry.Error
	if !errors.As(err, &re) || re.Side != registry.Destination || re.Status() != http.StatusUnauthorized {
		return err
	}
	api := harbor.NewAPI(imp.c, imp.dest.Registry)
	var missing []string
	for _, project := range projectsOf(targets) {
		ok, aerr := api.ProjectExists(ctx, project)
		if aerr != nil {
			return err // the API cannot tell: the hint stays as it is
		}
		if !ok {
			missing = append(missing, project)
		}
	}
	if len(missing) > 0 {
		re.Hint = fmt.Sprintf("Harbor has no project %s: create it in Harbor, or pass --create-projects", strings.Join(missing, ", "))
	} else {
		re.Hint = "the projects exist: the credentials were refused: check --dest-creds, the auth file, or the robot account's permissions"
	}
	return err
}
