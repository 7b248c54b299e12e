// Package bundle plans and runs ferry's two directions: Export pulls images
// from registries into a bundle, Import pushes a bundle into a registry. Both
// follow the pipeline of DESIGN.md: resolve, plan, transfer, commit.
//
// Registry I/O goes through oras-go v2; byte-level rules (verification,
// atomic files) come from package layout; checking a bundle before import
// comes from package verify. Progress is reported through the Progress
// interface, which the CLI fills in; this package never prints.
package bundle
