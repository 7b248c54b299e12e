// Package verify checks a bundle offline: the layout's structure, every
// included blob's size and digest, every manifest's references accounted
// for (present, or omitted by ferry.json because a baseline holds them), and
// ferry.json consistent with index.json. It reports every problem it finds,
// each naming the digest, the file and the images it breaks.
//
// Import runs the same check before it pushes anything.
package verify
