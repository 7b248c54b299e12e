package bundle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oci/ferry/bundle/spec"
	"github.com/ferry-oci/ferry/layout"
)

// ErrOutputInUse: export was pointed at a directory that holds something
// else than an earlier or interrupted export of the same plan.
var ErrOutputInUse = errors.New("the output directory holds something else")

// checkOutputDir lets a directory export write only into a directory that
// is new or empty, an interrupted export of this same plan (an OCI layout
// skeleton whose blobs are all this plan's, or ferry's temp files), or a
// ferry bundle of this same plan (its ferry.json lists the same images,
// referrers and blobs; only when it was made differs). Anything else, such
// as another tool's layout or a bundle of other images, is refused with
// what is there, before a byte is written: export never deletes or
// overwrites what it did not write.
func checkOutputDir(out string, plan *Plan, id digest.Digest) error {
	entries, err := os.ReadDir(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		if fi, serr := os.Stat(out); serr == nil && !fi.IsDir() {
			return fmt.Errorf("%w: %s is a file, not a directory: give -o a new directory, or NAME.tar for a tarball", ErrOutputInUse, out)
		}
		return err
	case len(entries) == 0:
		return nil
	}
	refuse := func(what string) error {
		return fmt.Errorf("%w (%w): %s %s; ferry exports into a new or empty directory, or into one holding an interrupted or complete export of the same images (to resume or refresh it): give -o another directory, or remove this one first", ErrOutputInUse, ErrInvalidOption, out, what)
	}
	var others []string
	for _, e := range entries {
		switch name := e.Name(); {
		case name == layout.FileOCILayout, name == "blobs", name == layout.FileIndex, name == layout.FileBundle, name == layout.FileSignature, strings.HasPrefix(name, layout.TempPrefix):
		default:
			others = append(others, name)
		}
	}
	if len(others) > 0 {
		return refuse(fmt.Sprintf("holds files no bundle has (%s)", strings.Join(firstFew(others), ", ")))
	}
	if data, err := os.ReadFile(filepath.Join(out, layout.FileBundle)); err == nil {
		old, err := spec.ParseBytes(data, filepath.Join(out, layout.FileBundle))
		if err != nil || planID(old) != id {
			return refuse("holds a bundle of other images (its ferry.json lists other images, referrers or blobs)")
		}
		return nil
	}
	if _, err := os.Stat(filepath.Join(out, layout.FileIndex)); err == nil {
		return refuse("holds an OCI layout that ferry did not write (an index.json without ferry.json)")
	}
	keep := map[string]bool{}
	for _, b := range plan.Blobs {
		keep[layout.BlobName(b.Desc.Digest)] = true
	}
	var foreign []string
	filepath.WalkDir(filepath.Join(out, "blobs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), layout.TempPrefix) {
			return nil
		}
		if rel, _ := filepath.Rel(out, path); !keep[filepath.ToSlash(rel)] {
			foreign = append(foreign, filepath.ToSlash(rel))
		}
		return nil
	})
	if len(foreign) > 0 {
		return refuse(fmt.Sprintf("holds %d blob(s) this export does not carry (%s): an interrupted export of other images, or another tool's layout", len(foreign), strings.Join(firstFew(foreign), ", ")))
	}
	return nil
}

// planID identifies what a ferry.json carries, whenever and by whom it was
// made: its canonical form with those two fields cleared.
func planID(m *spec.Manifest) digest.Digest {
	c := *m
	c.Created, c.Creator = time.Time{}, ""
	d := digest.Canonical.Digester()
	c.Encode(d.Hash()) // hashed as it is encoded: never held whole
	return d.Digest()
}

func firstFew(names []string) []string {
	if len(names) > 3 {
		return append(names[:3:3], "…")
	}
	return names
}

// pruneDir removes ferry's own temp files from the bundle's blob directory
// (an interrupted run's); it removes nothing else.
func pruneDir(root string) error {
	return filepath.WalkDir(filepath.Join(root, "blobs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasPrefix(d.Name(), layout.TempPrefix) {
			return err
		}
		return os.Remove(path)
	})
}
