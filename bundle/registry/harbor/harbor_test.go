package harbor

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/ferry-oci/ferry/bundle/registry"
)

func TestCheckRepository(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"mirror/library/alpine", "team-a/app", "a.b_c/x"} {
		if err := CheckRepository(ok); err != nil {
			t.Errorf("CheckRepository(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"alpine", "my__proj/app", "my--proj/app", "-x/app", "x./app"} {
		err := CheckRepository(bad)
		if !errors.Is(err, registry.ErrInvalidReference) || !strings.Contains(err.Error(), bad) {
			t.Errorf("CheckRepository(%q) = %v", bad, err)
		}
	}
}

// Hints are chosen by side, operation, status and code, never by text: a
// source repository named project-x/app that is "not found" is the
// source's missing image, not a missing Harbor project, and an import flag
// is never suggested on export.
func TestExplainChoosesHintsBySideStatusAndCode(t *testing.T) {
	t.Parallel()
	answer := func(status int, code, msg string) error {
		return &errcode.ErrorResponse{Method: http.MethodHead, URL: &url.URL{Path: "/v2/project-x/app/manifests/1"}, StatusCode: status, Errors: errcode.Errors{{Code: code, Message: msg}}}
	}
	tests := []struct {
		name       string
		err        error
		want, deny string
	}{
		{"source 404 naming a project", registry.Wrap(registry.Source, registry.OpResolve, "r.example/project-x/app:1", answer(404, "NAME_UNKNOWN", "project project-x not found")),
			"the source registry does not have it", "--create-projects"},
		{"source 401", registry.Wrap(registry.Source, registry.OpResolve, "r.example/a:1", answer(401, "UNAUTHORIZED", "project not found")),
			"--src-creds", "--create-projects"},
		{"destination 404 NOT_FOUND", registry.Wrap(registry.Destination, registry.OpPushBlob, "x", answer(404, "NOT_FOUND", "anything")),
			"Harbor has no such project", "--src-creds"},
		{"destination 404 NAME_UNKNOWN", registry.Wrap(registry.Destination, registry.OpCheckBlob, "x", answer(404, "NAME_UNKNOWN", "project mirror not found")),
			"", "Harbor has no such project"},
		{"destination 401", registry.Wrap(registry.Destination, registry.OpCheckTag, "x", answer(401, "UNAUTHORIZED", "")),
			"--create-projects", "--src-creds"},
		{"412 on a tag push", registry.Wrap(registry.Destination, registry.OpTag, "x", answer(412, "PRECONDITION", "whatever the text")),
			"immutable", "policy"},
		{"412 on a read", registry.Wrap(registry.Destination, registry.OpCheckTag, "x", answer(412, "PRECONDITION", "configured as immutable")),
			"policy", "immutable in Harbor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := Explain(tt.err).Error()
			if !strings.Contains(msg, tt.want) || (tt.deny != "" && strings.Contains(msg, tt.deny)) {
				t.Fatalf("%s\nwant it to say %q and not %q", msg, tt.want, tt.deny)
			}
		})
	}
}
