// Package layout reads and writes the files of a bundle: an OCI image
// layout (image-spec image-layout.md), in every form behind one Open: a
// directory (Dir), or a tarball read once from front to back (TarReader: a
// .tar or .tar.gz file, a split set, standard input); and written as a
// directory or a tarball (TarWriter, SplitWriter). ferry.json's model is
// package spec; layout reads and writes the file.
//
// It owns the byte-level rules every other package relies on:
//
//   - every blob read is checked against its descriptor (NewVerifyReader):
//     size-limited, hashed as it streams, and failing at EOF on a digest
//     mismatch, a short read or trailing data;
//   - every digest is validated before a path or a verifier is built from it;
//   - every file appears atomically (AtomicFile: temp file in the same
//     directory, fsync, rename); the callers write the metadata last;
//   - tar entries are checked before their bytes are used (no absolute
//     names, no "..", no links or devices, no repeats);
//   - JSON documents (index.json, manifests) are read with a cap;
//   - graph walking: the children of a manifest or index, each manifest
//     read once and verified (Graph), for export, import, verify and
//     inventory alike.
//
// The bundle format is specified in DESIGN.md, "Bundle format, version 1".
package layout
