package bundle

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.yaml.in/yaml/v3"

	"github.com/ferry-oci/ferry/bundle/registry"
)

// MirrorConfig is a mirror configuration in skopeo sync's YAML format, as it
// is: per registry, images with tag lists (an empty list: every tag),
// images-by-tag-regex, images-by-semver, tls-verify, cert-dir and
// credentials; plus ferry's own keys: platforms, exclude (tag regular
// expressions), newest (the newest N tags, by semver, else the registry's
// order), all-tags (repositories whose every tag travels) and referrers
// (false leaves them out).
type MirrorConfig struct {
	Registries []MirrorRegistry
}

// MirrorRegistry is one registry's entry.
type MirrorRegistry struct {
	Host        string
	Images      map[string][]string
	ByTagRegex  map[string]string
	BySemver    map[string]string
	TLSVerify   *bool
	CertDir     string
	Credentials *struct{ Username, Password string }
	Platforms   []ocispec.Platform
	Exclude     []*regexp.Regexp
	Newest      int
	AllTags     []string
	NoReferrers bool
}

// ErrMirrorConfig: a mirror configuration that does not parse, or has a
// key ferry does not know.
var ErrMirrorConfig = fmt.Errorf("%w: mirror configuration", ErrInvalidOption)

// ReadMirrorConfig reads a mirror configuration. A key ferry does not know
// is an error naming it and its line: a misspelled key must not select
// nothing, silently.
func ReadMirrorConfig(r io.Reader, name string) (*MirrorConfig, error) {
	data, err := io.ReadAll(io.LimitReader(r, 4<<20))
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrMirrorConfig, name, err)
	}
	cfg := &MirrorConfig{}
	if len(root.Content) == 0 {
		return cfg, nil
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w %s:%d: want registries as keys", ErrMirrorConfig, name, top.Line)
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		reg, err := readRegistry(top.Content[i].Value, top.Content[i+1], name)
		if err != nil {
			return nil, err
		}
		cfg.Registries = append(cfg.Registries, reg)
	}
	return cfg, nil
}

func readRegistry(host string, n *yaml.Node, name string) (MirrorRegistry, error) {
	reg := MirrorRegistry{Host: host}
	fail := func(at *yaml.Node, format string, args ...any) (MirrorRegistry, error) {
		return reg, fmt.Errorf("%w %s:%d: %s: %s", ErrMirrorConfig, name, at.Line, host, fmt.Sprintf(format, args...))
	}
	if n.Kind != yaml.MappingNode {
		return fail(n, "want a mapping")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch k.Value {
		case "images":
			err = v.Decode(&reg.Images)
		case "images-by-tag-regex":
			err = v.Decode(&reg.ByTagRegex)
		case "images-by-semver":
			err = v.Decode(&reg.BySemver)
		case "tls-verify":
			err = v.Decode(&reg.TLSVerify)
		case "cert-dir":
			err = v.Decode(&reg.CertDir)
		case "credentials":
			err = v.Decode(&reg.Credentials)
		case "platforms":
			var ps []string
			if err = v.Decode(&ps); err == nil {
				reg.Platforms, err = ParsePlatforms(ps)
			}
		case "exclude":
			var res []string
			if err = v.Decode(&res); err == nil {
				for _, e := range res {
					re, rerr := regexp.Compile(e)
					if rerr != nil {
						return fail(v, "exclude %q: %v", e, rerr)
					}
					reg.Exclude = append(reg.Exclude, re)
				}
			}
		case "newest":
			err = v.Decode(&reg.Newest)
		case "all-tags":
			err = v.Decode(&reg.AllTags)
		case "referrers":
			var on bool
			err = v.Decode(&on)
			reg.NoReferrers = !on
		default:
			return fail(k, "unknown key %q (skopeo sync's keys: images, images-by-tag-regex, images-by-semver, tls-verify, cert-dir, credentials; ferry's: platforms, exclude, newest, all-tags, referrers)", k.Value)
		}
		if err != nil {
			return fail(v, "%s: %v", k.Value, err)
		}
	}
	return reg, nil
}

// Picked is one image a mirror configuration selects, and how it travels.
type Picked struct {
	Reference   string
	Platforms   []ocispec.Platform
	NoReferrers bool
}

// EntryReport says, for one repository of a configuration, which tags it
// matched and which it excluded, and why: what --dry-run prints.
type EntryReport struct {
	Repository string
	Matched    []string
	Excluded   map[string]string // tag → why
}

// Resolve lists, at the source, the tags each entry of the configuration
// selects (every page of the tag list), and returns the images to export
// and, per repository, what matched and what did not.
func (cfg *MirrorConfig) Resolve(ctx context.Context, base registry.Options) ([]Picked, []EntryReport, error) {
	var picked []Picked
	var reports []EntryReport
	for _, reg := range cfg.Registries {
		opts := base
		if reg.TLSVerify != nil && !*reg.TLSVerify {
			opts.PlainHTTP, opts.InsecureSkipTLSVerify = true, true
		}
		if reg.CertDir != "" {
			opts.CertDir = reg.CertDir
		}
		if reg.Credentials != nil {
			opts.Credentials = reg.Credentials.Username + ":" + reg.Credentials.Password
		}
		c, err := registry.New(registry.Source, opts, reg.Host)
		if err != nil {
			return nil, nil, err
		}
		for _, repoName := range reg.repositories() {
			rep, tags, err := reg.pick(ctx, c, repoName)
			if err != nil {
				return nil, nil, err
			}
			reports = append(reports, rep)
			for _, t := range tags {
				sep := ":"
				if strings.Contains(t, ":") {
					sep = "@" // a digest in an images list
				}
				picked = append(picked, Picked{Reference: reg.Host + "/" + repoName + sep + t, Platforms: reg.Platforms, NoReferrers: reg.NoReferrers})
			}
		}
	}
	return picked, reports, nil
}

func (reg MirrorRegistry) repositories() []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string][]string{reg.Images} {
		for r := range m {
			seen[r] = true
		}
	}
	for r := range reg.ByTagRegex {
		seen[r] = true
	}
	for r := range reg.BySemver {
		seen[r] = true
	}
	for _, r := range reg.AllTags {
		seen[r] = true
	}
	for r := range seen {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// pick selects the tags of one repository.
func (reg MirrorRegistry) pick(ctx context.Context, c *registry.Client, repoName string) (EntryReport, []string, error) {
	rep := EntryReport{Repository: reg.Host + "/" + repoName, Excluded: map[string]string{}}
	listed, hasList := reg.Images[repoName]
	if hasList && len(listed) > 0 && reg.ByTagRegex[repoName] == "" && reg.BySemver[repoName] == "" {
		return rep, reg.filter(&rep, listed, false), nil // the tags named, as they are
	}
	repo, err := c.Repository(reg.Host, repoName)
	if err != nil {
		return rep, nil, err
	}
	all, err := c.Tags(ctx, repo)
	if err != nil {
		return rep, nil, err
	}
	var candidates []string
	re, constraint := reg.ByTagRegex[repoName], reg.BySemver[repoName]
	var rx *regexp.Regexp
	if re != "" {
		if rx, err = regexp.Compile(re); err != nil {
			return rep, nil, fmt.Errorf("%w: %s: images-by-tag-regex %q: %v", ErrMirrorConfig, rep.Repository, re, err)
		}
	}
	var cons *semver.Constraints
	if constraint != "" {
		if cons, err = semver.NewConstraint(constraint); err != nil {
			return rep, nil, fmt.Errorf("%w: %s: images-by-semver %q: %v", ErrMirrorConfig, rep.Repository, constraint, err)
		}
	}
	for _, t := range all {
		if _, ok := registry.CosignSubject(t); ok || strings.HasPrefix(t, "sha256-") {
			continue // signatures and referrers indexes travel with their images
		}
		switch {
		case rx != nil && !rx.MatchString(t):
			rep.Excluded[t] = "does not match " + re
		case cons != nil && !semverOK(cons, t):
			rep.Excluded[t] = "not semver " + constraint
		default:
			candidates = append(candidates, t)
		}
	}
	return rep, reg.filter(&rep, candidates, true), nil
}

func semverOK(c *semver.Constraints, tag string) bool {
	v, err := semver.NewVersion(tag) // v-prefixed tags count
	return err == nil && c.Check(v)
}

// filter applies exclude and newest to the tags, and records the result.
func (reg MirrorRegistry) filter(rep *EntryReport, tags []string, byRegistry bool) []string {
	var kept []string
	for _, t := range tags {
		excluded := false
		for _, re := range reg.Exclude {
			if re.MatchString(t) {
				rep.Excluded[t] = "excluded by " + re.String()
				excluded = true
				break
			}
		}
		if !excluded {
			kept = append(kept, t)
		}
	}
	if reg.Newest > 0 && len(kept) > reg.Newest {
		kept = newest(kept, reg.Newest)
		for _, t := range tags {
			if _, ex := rep.Excluded[t]; !ex && !containsTag(kept, t) {
				rep.Excluded[t] = fmt.Sprintf("not among the newest %d", reg.Newest)
			}
		}
	}
	rep.Matched = kept
	return kept
}

// newest keeps the n newest tags: by semver when every tag is one, else the
// last n in the registry's order.
func newest(tags []string, n int) []string {
	vs := make([]*semver.Version, len(tags))
	all := true
	for i, t := range tags {
		v, err := semver.NewVersion(t)
		if err != nil {
			all = false
			break
		}
		vs[i] = v
	}
	out := append([]string{}, tags...)
	if all {
		idx := make([]int, len(tags))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return vs[idx[a]].LessThan(vs[idx[b]]) })
		for i, j := range idx {
			out[i] = tags[j]
		}
	}
	return out[len(out)-n:]
}

func containsTag(tags []string, t string) bool {
	for _, x := range tags {
		if x == t {
			return true
		}
	}
	return false
}
