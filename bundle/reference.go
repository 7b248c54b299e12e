package bundle

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"

	"github.com/ferry-oci/ferry/bundle/registry"

	"github.com/opencontainers/go-digest"
	ocireg "oras.land/oras-go/v2/registry"

	"github.com/ferry-oci/ferry/layout"
)

// Sentinel errors of what the user typed: test with errors.Is. They are
// bundle/registry's, so one test catches both packages' answers.
var (
	// ErrInvalidReference: an image reference or --to target that does not parse.
	ErrInvalidReference = registry.ErrInvalidReference
	// ErrInvalidOption: an option value that cannot work.
	ErrInvalidOption = registry.ErrInvalidOption
)

// Reference is a fully qualified image reference: a registry host, a
// repository path and a tag, a digest or both.
type Reference struct {
	Registry   string
	Repository string
	Tag        string
	Digest     digest.Digest
}

// DockerHub is the registry of references without a host.
const DockerHub = "docker.io"

// ParseReference parses and normalises an image reference the way docker
// does, with distribution's own parser (github.com/distribution/reference):
// "alpine" is docker.io/library/alpine:latest; a first path component is a
// host only if it has a dot or a colon or is localhost; index.docker.io and
// registry-1.docker.io are docker.io. References are keys in ferry.json and
// baselines, so every spelling of one image must give the same string.
func ParseReference(s string) (Reference, error) {
	fail := func(why string) (Reference, error) {
		return Reference{}, fmt.Errorf("%w %q: %s", ErrInvalidReference, s, why)
	}
	if s == "" {
		return fail("empty")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return fail("contains white space")
	}
	in := s
	if rest, ok := strings.CutPrefix(s, dockerHubAPIHost+"/"); ok {
		in = DockerHub + "/" + rest // the host docker.io's API answers on
	}
	named, err := reference.ParseNormalizedNamed(in)
	if err != nil {
		return fail(err.Error())
	}
	r := Reference{Registry: reference.Domain(named), Repository: reference.Path(named)}
	if !strings.ContainsAny(r.Registry, ".:") && r.Registry != "localhost" {
		// Docker takes UPPER/app for a host named UPPER, only because of
		// its capitals; that is a mistyped repository far more often.
		return fail("repository names must be lower-case")
	}
	if t, ok := named.(reference.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.Digest = d.Digest()
		if err := layout.ValidateDigest(r.Digest); err != nil {
			return fail(err.Error())
		}
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	if err := r.validate(); err != nil {
		return fail(err.Error())
	}
	return r, nil
}

// dockerHubAPIHost is where docker.io's registry API lives.
const dockerHubAPIHost = "registry-1.docker.io"

func (r Reference) validate() error {
	ref := ocireg.Reference{Registry: r.Registry, Repository: r.Repository}
	if err := ref.ValidateRegistry(); err != nil {
		return fmt.Errorf("registry %q is not a valid host[:port]", r.Registry)
	}
	if err := ref.ValidateRepository(); err != nil {
		return fmt.Errorf("repository %q is not valid: lower-case letters, digits and separators (. _ - /) only", r.Repository)
	}
	if r.Tag != "" {
		ref.Reference = r.Tag
		if err := ref.ValidateReferenceAsTag(); err != nil {
			return fmt.Errorf("tag %q is not valid: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'", r.Tag)
		}
	}
	return nil
}

// String is the full reference: registry/repository[:tag][@digest].
func (r Reference) String() string {
	s := r.Registry + "/" + r.Repository
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Name is registry/repository.
func (r Reference) Name() string { return r.Registry + "/" + r.Repository }

// Target is what a registry resolves: the digest when there is one, else the tag.
func (r Reference) Target() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// Destination says where images go on import: a registry host and an
// optional repository prefix (harbor.internal/mirror).
type Destination struct {
	Registry string
	Prefix   string
	// KeepHost puts the source registry's host under the prefix, as a path
	// component (ImportOptions.KeepHost).
	KeepHost bool
}

// ParseDestination parses REGISTRY[/PREFIX].
func ParseDestination(s string) (Destination, error) {
	s = strings.TrimSuffix(s, "/")
	if s == "" {
		return Destination{}, fmt.Errorf("%w: empty destination: give --to REGISTRY[/PREFIX], e.g. harbor.internal/mirror", ErrInvalidReference)
	}
	if strings.ContainsAny(s, "@ \t") || strings.Contains(s, "://") {
		return Destination{}, fmt.Errorf("%w: destination %q: want REGISTRY[/PREFIX] with no scheme, tag or digest", ErrInvalidReference, s)
	}
	host, prefix, _ := strings.Cut(s, "/")
	d := Destination{Registry: host, Prefix: prefix}
	ref := ocireg.Reference{Registry: host, Repository: prefix}
	if err := ref.ValidateRegistry(); err != nil {
		return Destination{}, fmt.Errorf("%w: destination %q: registry %q is not a valid host[:port]", ErrInvalidReference, s, host)
	}
	if prefix != "" {
		if err := ref.ValidateRepository(); err != nil {
			return Destination{}, fmt.Errorf("%w: destination %q: prefix %q is not a valid repository path", ErrInvalidReference, s, prefix)
		}
	}
	return d, nil
}

// Rewrite maps a source reference into the destination: the source host is
// dropped and the repository path kept under the prefix.
// docker.io/library/alpine:3.20 → harbor.internal/mirror/library/alpine:3.20.
func (d Destination) Rewrite(src Reference) (Reference, error) {
	out := src
	out.Registry = d.Registry
	path := src.Repository
	if d.KeepHost {
		path = HostComponent(src.Registry) + "/" + path
	}
	out.Repository = d.Repository(path)
	if err := out.validate(); err != nil {
		return Reference{}, fmt.Errorf("%w: %s rewritten to %s: %v", ErrInvalidReference, src, out, err)
	}
	return out, nil
}

// HostComponent is a registry host as a repository path component:
// lower-case, a port's colon as '-' (127.0.0.1:5000 → 127.0.0.1-5000).
func HostComponent(host string) string {
	return strings.ReplaceAll(strings.ToLower(host), ":", "-")
}

// Repository maps a source repository path into the destination. With
// KeepHost the path must already carry its host component (Rewrite does
// that); a path from ferry.json, which has none, goes through Candidates.
func (d Destination) Repository(srcRepo string) string {
	if d.Prefix == "" {
		return srcRepo
	}
	return d.Prefix + "/" + srcRepo
}

// Candidates are the destination repositories a source repository path
// (from ferry.json, without a host) may have gone to: one, or, with
// KeepHost, one per source host.
func (d Destination) Candidates(srcRepo string, hosts []string) []string {
	if !d.KeepHost {
		return []string{d.Repository(srcRepo)}
	}
	var out []string
	for _, h := range hosts {
		out = append(out, d.Repository(HostComponent(h)+"/"+srcRepo))
	}
	return out
}

// String is REGISTRY[/PREFIX].
func (d Destination) String() string {
	if d.Prefix == "" {
		return d.Registry
	}
	return d.Registry + "/" + d.Prefix
}
