package registry

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
)

// Referrers lists what refers to subject in repo, every page of it: the
// OCI 1.1 referrers API where the registry has it (following Link
// headers), else the referrers tag schema (the index tagged
// sha256-<hex>). A repository the registry does not know (404
// NAME_UNKNOWN) has none. oras-go tells the two answers apart and
// remembers which the registry gave.
func (c *Client) Referrers(ctx context.Context, repo *Repository, subject ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	c.NoReferrersAPI(repo) // a registry found without the API: not probed again
	var out []ocispec.Descriptor
	err := repo.Referrers(ctx, subject, "", func(page []ocispec.Descriptor) error {
		out = append(out, page...)
		return nil
	})
	if err == nil {
		// The call has settled which way the registry answers; a setting
		// that disagrees is refused, so this tells without changing it.
		if repo.SetReferrersCapability(true) != nil {
			c.hostNoAPI.Store(repo.Reference.Registry, true)
		}
	}
	if err != nil && (HasCode(err, "NAME_UNKNOWN") || errors.Is(err, errdef.ErrNotFound)) {
		return nil, nil
	}
	return out, c.Wrap(OpReferrers, repo.Reference.Repository+"@"+subject.Digest.String(), err)
}

// NoReferrersAPI reports whether repo is known to have no referrers API (a
// Referrers call there, or in another repository of the same registry, has
// found the tag schema instead; oras-go is then told so): then a subject whose
// sha256-<hex> tag is not in the repository's tag list has no referrers,
// and need not be asked for.
//
// Nothing is kept per repository: with the registry known, telling the
// instance is one call, and an instance that has found the API itself
// refuses it (false).
func (c *Client) NoReferrersAPI(repo *Repository) bool {
	_, ok := c.hostNoAPI.Load(repo.Reference.Registry)
	return ok && repo.SetReferrersCapability(false) == nil
}

// ReferrersTag is the referrers tag schema's tag for subject: <alg>-<hex>.
func ReferrersTag(subject digest.Digest) string {
	return subject.Algorithm().String() + "-" + subject.Encoded()
}

// Tags lists every tag of repo, following pages. A repository the registry
// does not know has none.
func (c *Client) Tags(ctx context.Context, repo *Repository) ([]string, error) {
	var out []string
	err := repo.Tags(ctx, "", func(tags []string) error {
		out = append(out, tags...)
		return nil
	})
	if Status(err) == http.StatusNotFound {
		return nil, nil
	}
	return out, c.Wrap(OpList, "the tags of "+repo.Reference.Repository, err)
}

// CosignSuffixes are the tags cosign's scheme gives what it attaches to a
// manifest: sha256-<hex>.sig (signatures), .att (attestations) and .sbom.
var CosignSuffixes = []string{".sig", ".att", ".sbom"}

// CosignTag is the tag cosign's scheme gives an attachment of subject:
// sha256-<hex> and the suffix.
func CosignTag(subject digest.Digest, suffix string) string {
	return subject.Algorithm().String() + "-" + subject.Encoded() + suffix
}

// CosignSubject parses a cosign tag into the digest it attaches to, or
// reports false.
func CosignSubject(tag string) (digest.Digest, bool) {
	for _, suffix := range CosignSuffixes {
		rest, ok := strings.CutSuffix(tag, suffix)
		if !ok {
			continue
		}
		alg, hex, ok := strings.Cut(rest, "-")
		if !ok {
			return "", false
		}
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
		if d.Validate() != nil {
			return "", false
		}
		return d, true
	}
	return "", false
}
