package harbor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/ferry-oci/ferry/bundle/registry"
)

// API talks to Harbor's REST API (/api/v2.0) with the destination's
// credentials, for the checks an import makes before its first push.
type API struct {
	c    *registry.Client
	host string
}

// NewAPI is Harbor's API at host, through the destination's client.
func NewAPI(c *registry.Client, host string) *API { return &API{c: c, host: host} }

// maxAPIAnswer caps what ferry reads of one API answer.
const maxAPIAnswer = 4 << 20

// do sends one request to the API and decodes a JSON answer into out (when
// not nil and the status is 2xx). It returns the status.
func (a *API) do(ctx context.Context, method, path string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.c.Scheme()+"://"+a.host+"/api/v2.0"+path, nil)
	if err != nil {
		return 0, err
	}
	// A project named by digits is a name, not an ID.
	req.Header.Set("X-Is-Resource-Name", "true")
	cred, err := a.c.Credential(ctx, a.host)
	if err != nil {
		return 0, a.c.Wrap(registry.OpAPI, a.host, fmt.Errorf("credentials for Harbor's API: %w", err))
	}
	if cred.Username != "" {
		req.SetBasicAuth(cred.Username, cred.Password)
	}
	resp, err := a.c.HTTP().Do(req)
	if err != nil {
		return 0, a.c.Wrap(registry.OpAPI, a.host, fmt.Errorf("%s %s: %w", method, path, err))
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxAPIAnswer)).Decode(out); err != nil {
			return resp.StatusCode, a.c.Wrap(registry.OpAPI, a.host, fmt.Errorf("%s %s: the answer does not parse: %w", method, path, err))
		}
	}
	return resp.StatusCode, nil
}

func (a *API) status(path string, status int) error {
	return a.c.Wrap(registry.OpAPI, a.host, fmt.Errorf("GET %s: HTTP %d", path, status))
}

// ProjectExists asks whether a project exists (HEAD /projects?project_name=).
func (a *API) ProjectExists(ctx context.Context, project string) (bool, error) {
	path := "/projects?project_name=" + url.QueryEscape(project)
	st, err := a.do(ctx, http.MethodHead, path, nil)
	switch {
	case err != nil:
		return false, err
	case st == http.StatusOK:
		return true, nil
	case st == http.StatusNotFound:
		return false, nil
	}
	return false, a.status(path, st)
}

// Quota is a project's storage quota: Hard bytes (-1: none) and Used.
type Quota struct {
	Hard, Used int64
}

// Free is what the quota leaves, or -1 for no limit.
func (q Quota) Free() int64 {
	if q.Hard < 0 {
		return -1
	}
	return max(q.Hard-q.Used, 0)
}

// ProjectQuota reads a project's storage quota
// (GET /projects/{name}/summary: quota.hard.storage, quota.used.storage).
// A project without a quota in the answer has no limit.
func (a *API) ProjectQuota(ctx context.Context, project string) (Quota, error) {
	var s struct {
		Quota *struct {
			Hard map[string]int64 `json:"hard"`
			Used map[string]int64 `json:"used"`
		} `json:"quota"`
	}
	path := "/projects/" + url.PathEscape(project) + "/summary"
	st, err := a.do(ctx, http.MethodGet, path, &s)
	if err != nil {
		return Quota{}, err
	}
	if st != http.StatusOK {
		return Quota{}, a.status(path, st)
	}
	if s.Quota == nil {
		return Quota{Hard: -1}, nil
	}
	hard, ok := s.Quota.Hard["storage"]
	if !ok {
		hard = -1
	}
	return Quota{Hard: hard, Used: s.Quota.Used["storage"]}, nil
}

// Rule is one of a project's immutable tag rules, as Harbor's API lists it.
type Rule struct {
	ID             int64                 `json:"id"`
	Disabled       bool                  `json:"disabled"`
	TagSelectors   []Selector            `json:"tag_selectors"`
	ScopeSelectors map[string][]Selector `json:"scope_selectors"`
}

// Selector is a rule's pattern: kind "doublestar"; decoration "matches" or
// "excludes" for tags, "repoMatches" or "repoExcludes" for repositories.
type Selector struct {
	Kind       string `json:"kind"`
	Decoration string `json:"decoration"`
	Pattern    string `json:"pattern"`
}

// ImmutableRules lists a project's immutable tag rules
// (GET /projects/{name}/immutabletagrules).
func (a *API) ImmutableRules(ctx context.Context, project string) ([]Rule, error) {
	var rules []Rule
	path := "/projects/" + url.PathEscape(project) + "/immutabletagrules"
	st, err := a.do(ctx, http.MethodGet, path, &rules)
	if err != nil {
		return nil, err
	}
	if st != http.StatusOK {
		return nil, a.status(path, st)
	}
	return rules, nil
}

// Immutable reports whether a rule of rules keeps tag of repository (its
// path within the project) from moving: Harbor's own test, the first
// repository selector and the first tag selector of each enabled rule,
// doublestar patterns, an empty pattern matching everything.
func Immutable(rules []Rule, repository, tag string) bool {
	for _, r := range rules {
		repos := r.ScopeSelectors["repository"]
		if r.Disabled || len(repos) == 0 || len(r.TagSelectors) == 0 {
			continue
		}
		if selects(repos[0], repository) && selects(r.TagSelectors[0], tag) {
			return true
		}
	}
	return false
}

func selects(s Selector, value string) bool {
	matched := s.Pattern == ""
	if !matched {
		ok, err := doublestar.Match(s.Pattern, value)
		matched = err == nil && ok
	}
	switch s.Decoration {
	case "excludes", "repoExcludes":
		return !matched
	}
	return matched
}

// ContentTrust says whether a project only lets signed images be pulled
// (GET /projects/{name}: metadata enable_content_trust_cosign, or
// enable_content_trust for notary).
func (a *API) ContentTrust(ctx context.Context, project string) (cosign, notary bool, err error) {
	var p struct {
		Metadata map[string]string `json:"metadata"`
	}
	path := "/projects/" + url.PathEscape(project)
	st, err := a.do(ctx, http.MethodGet, path, &p)
	if err != nil {
		return false, false, err
	}
	if st != http.StatusOK {
		return false, false, a.status(path, st)
	}
	return p.Metadata["enable_content_trust_cosign"] == "true", p.Metadata["enable_content_trust"] == "true", nil
}

// DeleteProject deletes an (empty) project (DELETE /projects/{name}).
func (a *API) DeleteProject(ctx context.Context, project string) error {
	path := "/projects/" + url.PathEscape(project)
	st, err := a.do(ctx, http.MethodDelete, path, nil)
	if err != nil {
		return err
	}
	if st/100 != 2 {
		return a.c.Wrap(registry.OpAPI, a.host, fmt.Errorf("DELETE %s: HTTP %d", path, st))
	}
	return nil
}
