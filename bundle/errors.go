package bundle

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// explain adds to a registry error what the user can do about it. side is
// the flag prefix of the registry that failed: "src" or "dest".
func explain(err error, side string) error {
	if err == nil {
		return nil
	}
	var resp *errcode.ErrorResponse
	switch {
	case harborProjectMissing(err):
		return fmt.Errorf("%w: Harbor has no such project: create it in Harbor, or pass --create-projects", err)
	case errors.As(err, &resp) && resp.StatusCode == http.StatusPreconditionFailed && strings.Contains(strings.ToLower(err.Error()), "immutable"):
		return fmt.Errorf("%w: the tag is immutable in Harbor (a tag immutability rule): keep it, or import under another tag", err)
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		return fmt.Errorf("%w: the registry wants credentials: pass --%s-creds USER:PASSWORD or log in so that docker's config.json has them", err, side)
	case errors.As(err, &resp) && resp.StatusCode == http.StatusUnauthorized && side == "dest":
		return fmt.Errorf("%w: the registry refused: check --dest-creds or docker's config.json; on Harbor, the project (the first part of the path) must also exist: create it, or pass --create-projects", err)
	case errors.As(err, &resp) && resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%w: the registry rejected the credentials: check --%s-creds or docker's config.json", err, side)
	case errors.As(err, &resp) && resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: the credentials lack permission for this repository (or a quota or policy refused it)", err)
	case errors.As(err, &resp) && resp.StatusCode == http.StatusNotFound && side == "src":
		return fmt.Errorf("%w: the source registry does not have it (deleted, or garbage-collected since the image was tagged?)", err)
	case errors.Is(err, errdef.ErrNotFound) && side == "src":
		return fmt.Errorf("%w: the source registry does not have it (a typo in the reference, or deleted?)", err)
	case errors.As(err, &resp) && resp.StatusCode == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: the registry, or a proxy in front of it, refused the upload as too large: raise its body size limit (nginx: client_max_body_size 0)", err)
	}
	return err
}

// registryRejectedDigest reports whether a registry refused an upload
// because the bytes did not match the digest or size they were sent with.
func registryRejectedDigest(err error) bool {
	var resp *errcode.ErrorResponse
	if !errors.As(err, &resp) {
		return false
	}
	for _, e := range resp.Errors {
		switch e.Code {
		case "DIGEST_INVALID", "SIZE_INVALID":
			return true
		}
	}
	return false
}

// harborProjectMissing reports Harbor's answer for a repository whose
// project does not exist ("project mirror not found").
func harborProjectMissing(err error) bool {
	var resp *errcode.ErrorResponse
	if !errors.As(err, &resp) {
		return false
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "project") && strings.Contains(msg, "not found")
}

// pullBlocked reports Harbor's 412 for a read that a project policy
// (vulnerability or signature) forbids.
func pullBlocked(err error) bool {
	var resp *errcode.ErrorResponse
	return errors.As(err, &resp) && resp.StatusCode == http.StatusPreconditionFailed
}
