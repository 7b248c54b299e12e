// Package verify checks a bundle that layout.Open opened: the layout's
// structure, every included blob's size and digest, every manifest's
// references accounted for (present, or omitted by ferry.json because a
// baseline holds them), and ferry.json consistent with index.json. It
// reports every problem it finds, each naming the digest, the file and the
// images it breaks; Report.Err is a verify.Error that matches
// ErrBundleInvalid and each problem's own sentinel.
//
// Import runs Structure (or, for a tarball, Head) before its first request
// to the destination; the blobs themselves are hashed as they are pushed
// (Report.Fault names one that fails), or all of them first with
// --verify-first.
package verify
