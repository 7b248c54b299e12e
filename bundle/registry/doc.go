// Package registry is one side's registry client, on oras-go v2: Options
// (TLS and certs.d directories, credentials and auth files), Client (one
// HTTP client, credential source and token cache per side), Login and
// Logout, retries and resumable reads, cancelling upload sessions ferry
// will not finish, mounts, and Error, the one typed error every registry
// failure is reported as: which side, what ferry was doing, on what, and a
// hint chosen by the error code and HTTP status.
//
// It is the only ferry package that imports oras-go's registry/remote.
// Harbor's own rules live in the subpackage harbor.
package registry
