// Package layout reads and writes the files of a ferry bundle: an OCI image
// layout (image-spec image-layout.md) plus ferry's own ferry.json.
//
// It owns the byte-level rules every other package relies on:
//
//   - every blob read is checked against its descriptor (NewVerifyReader):
//     size-limited, hashed as it streams, and failing at EOF on a digest
//     mismatch, a short read or trailing data;
//   - every digest is validated before a path or a verifier is built from it;
//   - every file appears atomically (temp file in the same directory, fsync,
//     rename), metadata last;
//   - JSON documents (index.json, manifests, ferry.json) are read with a cap.
//
// The bundle format is specified in DESIGN.md, "Bundle format, version 1".
package layout
