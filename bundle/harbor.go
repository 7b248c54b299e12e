package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
)

// createProjects makes sure every Harbor project the targets need exists,
// through Harbor's API (POST /api/v2.0/projects; 201 created, 409 already
// there), with the destination's credentials. It returns the projects it
// created.
func (imp *importer) createProjects(ctx context.Context, targets []Target) ([]string, error) {
	want := map[string]bool{}
	for _, t := range targets {
		project, _, _ := strings.Cut(t.Dest.Repository, "/")
		want[project] = true
	}
	projects := make([]string, 0, len(want))
	for p := range want {
		projects = append(projects, p)
	}
	sort.Strings(projects)
	scheme := "https"
	if imp.c.plain {
		scheme = "http"
	}
	cred, err := imp.c.auth.Credential(ctx, imp.dest.Registry)
	if err != nil {
		return nil, fmt.Errorf("destination: credentials for Harbor's API: %w", err)
	}
	var created []string
	for _, project := range projects {
		body, _ := json.Marshal(map[string]any{"project_name": project, "metadata": map[string]string{"public": "false"}})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, scheme+"://"+imp.dest.Registry+"/api/v2.0/projects", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if cred.Username != "" {
			req.SetBasicAuth(cred.Username, cred.Password)
		}
		resp, err := imp.c.auth.Client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("destination: creating Harbor project %s: %w", project, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			created = append(created, project)
			imp.prog.Logf("created Harbor project %s", project)
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
