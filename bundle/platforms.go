package bundle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/layout"
)

// PlatformMode is what export does with a multi-arch image when a platform
// selection leaves some of its platforms out.
type PlatformMode string

const (
	// NewIndex writes a new index that lists only the chosen platforms'
	// manifests (the default). It has a new digest: signatures on the
	// original index no longer apply (the children's still do), and every
	// registry takes it, Harbor and distribution 2.8 included.
	NewIndex PlatformMode = "new-index"
	// SingleManifest carries the one chosen platform's manifest under the
	// tag, with no index at all; more than one platform chosen is an error.
	SingleManifest PlatformMode = "single"
)

// ErrNoPlatform: an image has none of the platforms asked for.
var ErrNoPlatform = errors.New("no matching platform")

// ParsePlatforms reads --platform values: os/arch[/variant], several to a
// value separated by commas; "all" (or nothing) selects every platform.
func ParsePlatforms(values []string) ([]ocispec.Platform, error) {
	var out []ocispec.Platform
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" || s == "all" {
				continue
			}
			parts := strings.Split(s, "/")
			if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
				return nil, fmt.Errorf("%w: platform %q: want os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8", ErrInvalidOption, s)
			}
			p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
			if len(parts) == 3 {
				p.Variant = parts[2]
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// Selection says what a platform selection did to one image.
type Selection struct {
	// Original is the index the source has under the reference.
	Original ocispec.Descriptor
	// Kept and Dropped are the platforms carried and left out.
	Kept, Dropped []string
	// Inapplicable counts the referrers of the original index (its
	// signatures, attestations, SBOMs): they do not apply to what travels,
	// and stay behind.
	Inapplicable int
}

// matches reports whether platform p is one of want; a variant asked for
// must match, none asked for takes any.
func matches(p *ocispec.Platform, want []ocispec.Platform) bool {
	if p == nil {
		return false
	}
	for _, w := range want {
		if p.OS == w.OS && p.Architecture == w.Architecture && (w.Variant == "" || p.Variant == w.Variant) {
			return true
		}
	}
	return false
}

// selectPlatforms narrows every multi-arch image of images to the
// platforms asked for, as mode says; images of a single platform pass as
// they are. An image with none of them fails the plan, naming it.
func selectPlatforms(ctx context.Context, g *layout.Graph, images []PlannedImage, wants func(PlannedImage) []ocispec.Platform, mode PlatformMode) error {
	var none []string
	var asked []ocispec.Platform
	for i := range images {
		img := &images[i]
		want := wants(*img)
		if len(want) == 0 || !layout.IsIndex(img.Root.MediaType) {
			continue
		}
		asked = want
		root, sel, err := narrow(ctx, g, img.Root, want, mode)
		if errors.Is(err, ErrNoPlatform) {
			none = append(none, fmt.Sprintf("%s (has %s)", img.Source, strings.Join(sel.Dropped, ", ")))
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", img.Source, err)
		}
		if len(sel.Dropped) == 0 {
			continue // every platform it has was asked for
		}
		sel.Original = img.Root
		img.Root, img.Selection = root, &sel
		if img.Graph, err = g.Walk(context.Background(), readNothing{}, root); err != nil {
			return fmt.Errorf("%s: %w", img.Source, err)
		}
	}
	if len(none) > 0 {
		return fmt.Errorf("%w for %s: %d image(s) have none of them:\n  - %s\nchoose other platforms, or leave these images out",
			ErrNoPlatform, platformList(asked), len(none), strings.Join(none, "\n  - "))
	}
	return nil
}

// narrow filters one index (nested indexes too) to the wanted platforms and
// returns what replaces it: a new index, or, in SingleManifest mode, the
// one manifest chosen.
func narrow(ctx context.Context, g *layout.Graph, index ocispec.Descriptor, want []ocispec.Platform, mode PlatformMode) (ocispec.Descriptor, Selection, error) {
	var sel Selection
	data, err := g.Bytes(ctx, index)
	if err != nil {
		return index, sel, err
	}
	var doc map[string]json.RawMessage
	var entries []json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return index, sel, err
	}
	if err := json.Unmarshal(doc["manifests"], &entries); err != nil {
		return index, sel, err
	}
	var kept []json.RawMessage
	var keptDescs []ocispec.Descriptor
	for _, raw := range entries {
		var d ocispec.Descriptor
		if err := json.Unmarshal(raw, &d); err != nil {
			return index, sel, err
		}
		if layout.IsIndex(d.MediaType) && d.Platform == nil {
			// A nested index without a platform of its own: narrow it too.
			sub, subSel, err := narrow(ctx, g, d, want, NewIndex)
			sel.Dropped = append(sel.Dropped, subSel.Dropped...)
			if err != nil {
				continue
			}
			sel.Kept = append(sel.Kept, subSel.Kept...)
			raw, _ = json.Marshal(sub)
			kept, keptDescs = append(kept, raw), append(keptDescs, sub)
			continue
		}
		if d.Platform == nil {
			// No platform to judge it by: it stays.
			kept, keptDescs = append(kept, raw), append(keptDescs, d)
			continue
		}
		name := formatPlatform(*d.Platform)
		if matches(d.Platform, want) {
			sel.Kept = append(sel.Kept, name)
			kept, keptDescs = append(kept, raw), append(keptDescs, d)
		} else if !slices.Contains(sel.Dropped, name) {
			sel.Dropped = append(sel.Dropped, name)
		}
	}
	if len(sel.Kept) == 0 {
		return index, sel, ErrNoPlatform
	}
	if len(sel.Dropped) == 0 {
		return index, sel, nil
	}
	if mode == SingleManifest {
		if len(keptDescs) != 1 || layout.IsIndex(keptDescs[0].MediaType) {
			return index, sel, fmt.Errorf("%w: --platform-mode single carries one manifest, and %d platforms match (%s)", ErrInvalidOption, len(sel.Kept), strings.Join(sel.Kept, ", "))
		}
		d := keptDescs[0]
		return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, sel, nil
	}
	doc["manifests"], _ = json.Marshal(kept)
	out, err := json.Marshal(doc)
	if err != nil {
		return index, sel, err
	}
	desc := ocispec.Descriptor{MediaType: index.MediaType, Digest: digest.FromBytes(out), Size: int64(len(out))}
	if err := g.Add(desc, out); err != nil {
		return index, sel, err
	}
	return desc, sel, nil
}

func platformList(ps []ocispec.Platform) string {
	var s []string
	for _, p := range ps {
		s = append(s, formatPlatform(p))
	}
	return strings.Join(s, ", ")
}

// readNothing is the fetcher of a walk whose manifests are all in the graph
// already.
type readNothing struct{}

func (readNothing) Fetch(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	return nil, fmt.Errorf("manifest %s: %w (not read while narrowing platforms)", d.Digest, layout.ErrBlobNotFound)
}

// countInapplicable counts, for each narrowed image, what refers to the
// original index at the source: those signatures and SBOMs are over an
// index that does not travel.
func countInapplicable(ctx context.Context, c *registry.Client, images []PlannedImage) error {
	for i := range images {
		sel := images[i].Selection
		if sel == nil {
			continue
		}
		repo, err := c.Repository(images[i].Source.Registry, images[i].Source.Repository)
		if err != nil {
			return err
		}
		listed, err := c.Referrers(ctx, repo, sel.Original)
		if err != nil {
			return err
		}
		sel.Inapplicable = len(listed)
		for _, suffix := range registry.CosignSuffixes {
			if _, err := repo.Resolve(ctx, registry.CosignTag(sel.Original.Digest, suffix)); err == nil {
				sel.Inapplicable++
			}
		}
	}
	return nil
}
