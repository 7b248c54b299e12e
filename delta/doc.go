// Package delta owns baselines: lists of the blobs a destination is known to
// hold, with the repositories they live in. A baseline is the ferry.json of
// a bundle imported before, or the file `ferry inventory` writes; both have
// the same format (spec.Manifest). Load reads and merges baselines;
// an export subtracts the merged set from its plan, so a delta bundle
// carries only new blobs. See DESIGN.md, "Baselines and deltas".
package delta
