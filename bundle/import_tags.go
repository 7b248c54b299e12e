package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2/errdef"

	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/bundle/registry/harbor"
)

// TagAction is what import will do with one destination tag.
type TagAction struct {
	// Target points into the import's targets: thousands of tags share
	// them rather than copy them.
	Target *Target
	// Current is the digest the tag points at now; empty when absent.
	Current digest.Digest
}

// ErrTagWouldMove: --no-overwrite refused to move a tag that points at
// another image.
var ErrTagWouldMove = errors.New("tags point at other images")

// planTags resolves every destination tag before anything is pushed, at
// most imp.jobs at once. With noOverwrite, a tag that points at another
// image stops the import there, naming every such tag.
func (imp *importer) planTags(ctx context.Context, targets []Target, noOverwrite bool) ([]TagAction, error) {
	var out []TagAction
	for i := range targets {
		if targets[i].Dest.Tag != "" {
			out = append(out, TagAction{Target: &targets[i]})
		}
	}
	var fns []func(context.Context) error
	for i := range out {
		fns = append(fns, func(ctx context.Context) error {
			t := out[i].Target
			repo, err := imp.repo(t.Dest.Repository)
			if err != nil {
				return err
			}
			cur, err := repo.Resolve(ctx, t.Dest.Tag)
			switch {
			case err == nil:
				out[i].Current = cur.Digest
			case harbor.PullBlocked(err):
				// Harbor's policy hides where the tag points: it is set,
				// and reported as set.
				imp.prog.Logf("%s: the registry's policy blocks reading this tag (HTTP 412); it will be set", t.Dest)
			case !errors.Is(err, errdef.ErrNotFound):
				return imp.c.Wrap(registry.OpCheckTag, t.Dest.String(), err)
			}
			return nil
		})
	}
	if err := imp.parallel(ctx, fns); err != nil {
		return nil, err
	}
	var refused []string
	for _, a := range out {
		if noOverwrite && a.Current != "" && a.Current != a.Target.Root().Digest {
			refused = append(refused, fmt.Sprintf("%s points at %s; the bundle has %s", a.Target.Dest, a.Current, a.Target.Root().Digest))
		}
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("%w and --no-overwrite is set; nothing was pushed:\n  - %s", ErrTagWouldMove, strings.Join(refused, "\n  - "))
	}
	return out, nil
}

// pushTags points each destination tag at its image, last of all, at most
// imp.jobs at once. A tag already there is left alone (Harbor's immutable
// tags refuse even an identical push); one pointing elsewhere is moved and
// reported.
func (imp *importer) pushTags(ctx context.Context, actions []TagAction, sum *ImportSummary) error {
	var fns []func(context.Context) error
	for _, a := range actions {
		t, current := a.Target, a.Current
		if current == t.Root().Digest {
			sum.TagsUnchanged++
			continue
		}
		fns = append(fns, func(ctx context.Context) error {
			repo, err := imp.repo(t.Dest.Repository)
			if err != nil {
				return err
			}
			data, err := imp.manifest(ctx, *t.Root())
			if err != nil {
				return err
			}
			if err := repo.Manifests().PushReference(ctx, *t.Root(), bytes.NewReader(data), t.Dest.Tag); err != nil {
				return imp.foreignHint(*t.Root(), imp.c.Wrap(registry.OpTag, t.Dest.String(), err))
			}
			if current != "" {
				imp.prog.Logf("moved tag %s from %s to %s", t.Dest, current, t.Root().Digest)
			}
			return nil
		})
	}
	if err := imp.parallel(ctx, fns); err != nil {
		return err
	}
	for _, a := range actions {
		switch t := a.Target; {
		case a.Current == t.Root().Digest:
		case a.Current != "":
			sum.TagsMoved = append(sum.TagsMoved, fmt.Sprintf("%s (was %s)", t.Dest, a.Current))
		default:
			sum.TagsSet = append(sum.TagsSet, t.Dest.String())
		}
	}
	return nil
}
