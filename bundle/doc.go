// Package bundle plans and runs ferry's two directions: Export pulls images
// from registries into a bundle, Import pushes a bundle into a registry, and
// Inspect describes one. Both directions follow the pipeline of DESIGN.md:
// resolve, plan, transfer, commit. It also parses references (docker's
// normalisation) and rewrites them into the destination (--to).
//
// Registry I/O goes through package registry (oras-go v2), Harbor's rules
// through registry/harbor; byte-level rules (verified reads, atomic files,
// the bundle's forms) come from package layout, the ferry.json model from
// spec, checking a bundle before import from verify, and baselines from
// delta. Progress is reported through the Progress interface, which the CLI
// fills in; this package never prints.
//
// Why ferry orchestrates the copy itself rather than calling oras-go's
// CopyGraph for each image: CopyGraph copies one root between two targets,
// fetching and pushing as it walks. ferry must know every byte before the
// first one moves (one plan across thousands of roots, each shared blob
// once, minus a baseline or what the destination has); push all blobs, then
// all manifests, then all tags, so that no tag appears before every image
// and signature it needs (CopyGraph tags each root when its own graph is
// done); carry delta bundles in which blobs are omitted on purpose (a
// missing blob is an error to CopyGraph), mounting those from other
// repositories; read a tarball once, in its own order; and hold back each
// blob's last bytes until it verifies. The pieces it uses from oras-go are
// the repository client, Mount, Resolve and the content verifiers' rules.
package bundle
