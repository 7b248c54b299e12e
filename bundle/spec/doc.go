// Package spec is the model of ferry.json, the bundle manifest of DESIGN.md
// ("ferry.json"), which is also the format of a baseline: Parse reads one,
// capped at MaxSize and strict about the mediaType version, and Marshal
// writes its canonical, sorted form. It is a leaf: it knows nothing of
// layouts, registries or the network.
package spec
