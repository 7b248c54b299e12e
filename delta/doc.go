// Package delta owns baselines: lists of the blobs a destination is known to
// hold, with the repositories they live in. A baseline is the ferry.json of
// a bundle imported before, or the file Inventory writes after asking the
// destination registry itself (WriteInventory, for `ferry inventory`); both
// have the same format (spec.Manifest). Load reads and merges baselines, and
// an export subtracts the merged set from its plan, so a delta bundle
// carries only new blobs. See DESIGN.md, "Baselines and deltas".
package delta
