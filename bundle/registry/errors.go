package registry

import (
	"errors"
	"fmt"
	"net/http"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// Side says which registry an error came from.
type Side int

const (
	// Source is the registry an export pulls from.
	Source Side = iota
	// Destination is the registry an import pushes to.
	Destination
)

func (s Side) String() string {
	if s == Destination {
		return "destination"
	}
	return "source"
}

// flag is the prefix of the side's command-line flags (--src-creds).
func (s Side) flag() string {
	if s == Destination {
		return "dest"
	}
	return "src"
}

// wrapOption names the side of an option error (a CA file, credentials).
func (s Side) wrapOption(err error) error { return fmt.Errorf("%s: %w", s, err) }

// Op is what ferry was doing when a registry failed.
type Op string

// The operations a registry error can name.
const (
	OpResolve      Op = "resolving"
	OpReadGraph    Op = "reading the graph of"
	OpFetchBlob    Op = "fetching blob"
	OpCheckBlob    Op = "checking blob"
	OpPushBlob     Op = "pushing blob"
	OpMount        Op = "mounting blob"
	OpCheckTag     Op = "resolving tag"
	OpCheckMfst    Op = "checking manifest"
	OpPushManifest Op = "pushing manifest"
	OpTag          Op = "tagging"
	OpList         Op = "listing"
	OpReferrers    Op = "listing the referrers of"
	OpLogin        Op = "logging in to"
	OpAPI          Op = "calling the API of"
)

// Error is a registry failure: which side, what ferry was doing, on which
// reference, and why. Its message ends with a hint chosen by the error code
// and the HTTP status (never by the message's text): what the user can do.
type Error struct {
	Side Side
	Op   Op
	// Ref names the repository, blob or reference concerned.
	Ref string
	Err error
	// Hint, when set, replaces the hint Error would choose (package harbor
	// sets Harbor's).
	Hint string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %s %s: %v", e.Side, e.Op, e.Ref, e.Err)
	if h := e.hint(); h != "" {
		msg += ": " + h
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status the registry answered with; 0 when it did not
// answer (a network failure) or the error is not an HTTP answer.
func (e *Error) Status() int {
	var resp *errcode.ErrorResponse
	if errors.As(e.Err, &resp) {
		return resp.StatusCode
	}
	return 0
}

// HasCode reports whether the registry's answer carries the error code
// (NAME_UNKNOWN, DIGEST_INVALID, …).
func (e *Error) HasCode(code string) bool { return HasCode(e.Err, code) }

// HasCode reports whether err is a registry answer carrying the error code.
func HasCode(err error, code string) bool {
	var resp *errcode.ErrorResponse
	if !errors.As(err, &resp) {
		return false
	}
	for _, c := range resp.Errors {
		if c.Code == code {
			return true
		}
	}
	return false
}

// Status is the HTTP status of a registry answer in err, or 0.
func Status(err error) int {
	var resp *errcode.ErrorResponse
	if errors.As(err, &resp) {
		return resp.StatusCode
	}
	return 0
}

func (e *Error) hint() string {
	if e.Hint != "" {
		return e.Hint
	}
	flag := e.Side.flag()
	switch status := e.Status(); {
	case errors.Is(e.Err, auth.ErrBasicCredentialNotFound):
		return fmt.Sprintf("the registry wants credentials: pass --%s-creds USER:PASSWORD or log in so that docker's config.json has them", flag)
	case status == http.StatusUnauthorized:
		return fmt.Sprintf("the registry rejected the credentials: check --%s-creds or docker's config.json", flag)
	case status == http.StatusForbidden:
		return "the credentials lack permission for this repository (or a quota or policy refused it)"
	case status == http.StatusNotFound && e.Side == Source:
		return "the source registry does not have it (deleted, or garbage-collected since the image was tagged?)"
	case errors.Is(e.Err, errdef.ErrNotFound) && e.Side == Source:
		return "the source registry does not have it (a typo in the reference, or deleted?)"
	case status == http.StatusRequestEntityTooLarge:
		return "the registry, or a proxy in front of it, refused the upload as too large: raise its body size limit (nginx: client_max_body_size 0)"
	}
	return ""
}

// Wrap returns err as an *Error of this client's side, or nil for nil. An
// error that already is one is returned as it is.
func (c *Client) Wrap(op Op, ref string, err error) error {
	return Wrap(c.side, op, ref, err)
}

// Wrap returns err as an *Error of side, or nil for nil. An error that
// already is one is returned as it is.
func Wrap(side Side, op Op, ref string, err error) error {
	if err == nil {
		return nil
	}
	var re *Error
	if errors.As(err, &re) {
		return err
	}
	return &Error{Side: side, Op: op, Ref: ref, Err: err}
}

// RejectedDigest reports whether a registry refused an upload because the
// bytes did not match the digest or size they were sent with.
func RejectedDigest(err error) bool {
	return HasCode(err, "DIGEST_INVALID") || HasCode(err, "SIZE_INVALID")
}
