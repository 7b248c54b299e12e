package harbor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/ferry-oci/ferry/bundle/registry"
)

// projectName is Harbor's rule for project names, stricter than OCI's path
// components: no "__", no runs of "-".
var projectName = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// CheckRepository applies Harbor's rules to a destination repository: its
// first path component is a project, with a stricter name, and a
// repository needs a project and a name below it.
func CheckRepository(repo string) error {
	project, rest, ok := strings.Cut(repo, "/")
	if !ok || rest == "" {
		return fmt.Errorf("%w: %q: Harbor needs PROJECT/REPOSITORY; give --to a prefix that names the project (harbor.internal/mirror)", registry.ErrInvalidReference, repo)
	}
	if len(project) < 1 || len(project) > 255 || !projectName.MatchString(project) {
		return fmt.Errorf("%w: %q: %q is not a valid Harbor project name (lower-case letters and digits, separated by single '.', '_' or '-')", registry.ErrInvalidReference, repo, project)
	}
	return nil
}

// Project is the Harbor project of a destination repository: its first
// path component.
func Project(repo string) string {
	project, _, _ := strings.Cut(repo, "/")
	return project
}

// CreateProjects makes sure every Harbor project of repos exists, through
// Harbor's API (POST /api/v2.0/projects; 201 created, 409 already there),
// with the destination's credentials. Projects are created private. It
// returns the projects it created; logf is told of each.
func CreateProjects(ctx context.Context, c *registry.Client, host string, repos []string, logf func(string, ...any)) ([]string, error) {
	want := map[string]bool{}
	for _, r := range repos {
		want[Project(r)] = true
	}
	projects := make([]string, 0, len(want))
	for p := range want {
		projects = append(projects, p)
	}
	sort.Strings(projects)
	cred, err := c.Credential(ctx, host)
	if err != nil {
		return nil, c.Wrap(registry.OpAPI, host, fmt.Errorf("credentials for Harbor's API: %w", err))
	}
	var created []string
	for _, project := range projects {
		body, _ := json.Marshal(map[string]any{"project_name": project, "metadata": map[string]string{"public": "false"}})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Scheme()+"://"+host+"/api/v2.0/projects", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if cred.Username != "" {
			req.SetBasicAuth(cred.Username, cred.Password)
		}
		resp, err := c.HTTP().Do(req)
		if err != nil {
			return nil, c.Wrap(registry.OpAPI, host, fmt.Errorf("creating Harbor project %s: %w", project, err))
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			created = append(created, project)
			logf("created Harbor project %s", project)
		case http.StatusConflict:
			// Already there.
		case http.StatusUnauthorized, http.StatusForbidden:
			return nil, fmt.Errorf("destination: creating Harbor project %s: HTTP %d: the user may not create projects (Harbor: give it the right to, or create the project first): %s", project, resp.StatusCode, strings.TrimSpace(string(msg)))
		default:
			return nil, fmt.Errorf("destination: creating Harbor project %s: HTTP %d: %s", project, resp.StatusCode, strings.TrimSpace(string(msg)))
		}
	}
	return created, nil
}

// PullBlocked reports Harbor's 412 for a read that a project policy
// (vulnerability or signature) forbids.
func PullBlocked(err error) bool {
	return registry.Status(err) == http.StatusPreconditionFailed
}

// Explain gives a destination's *registry.Error in err the hint that fits
// Harbor's answers, chosen by the operation, the HTTP status and the error
// code, never by the message's text. Errors of the source, and answers
// Harbor does not give, keep registry's own hint.
func Explain(err error) error {
	var re *registry.Error
	if !errors.As(err, &re) || re.Side != registry.Destination || re.Hint != "" {
		return err
	}
	switch status := re.Status(); {
	case status == http.StatusNotFound && re.HasCode("NOT_FOUND"):
		// Distribution's codes are NAME_UNKNOWN, BLOB_UNKNOWN, …;
		// NOT_FOUND is Harbor's, for a project that does not exist.
		re.Hint = "Harbor has no such project: create it in Harbor, or pass --create-projects"
	case status == http.StatusUnauthorized:
		re.Hint = "the registry refused: check --dest-creds or docker's config.json; on Harbor, the project (the first part of the path) must also exist: create it, or pass --create-projects"
	case status == http.StatusPreconditionFailed && re.Op == registry.OpTag:
		re.Hint = "the tag is immutable in Harbor (a tag immutability rule): keep it, or import under another tag"
	case status == http.StatusPreconditionFailed:
		re.Hint = "a Harbor project policy (content trust or vulnerability prevention) refused it"
	}
	return err
}
