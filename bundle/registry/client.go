package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"weak"

	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// Options say how to reach one side's registries. The zero value means
// HTTPS with the system's CAs and the credentials of docker's config.json,
// if any.
type Options struct {
	// PlainHTTP talks HTTP instead of HTTPS.
	PlainHTTP bool
	// Credentials is "user:password". Empty means docker's config.json
	// (and its credential helpers). Everything after the first colon is the
	// password, so robot accounts like robot$mirror+ci work.
	Credentials string
	// CAFile is a PEM bundle trusted in addition to the system's CAs.
	CAFile string
	// CertDir is a directory in the style of docker's and skopeo's certs.d:
	// every *.crt in it is a trusted CA, and a *.cert with its *.key (as
	// client.cert and client.key) is the client certificate for mutual TLS.
	// Empty means none.
	CertDir string
	// InsecureSkipTLSVerify accepts any server certificate. False (the
	// zero value) verifies it.
	InsecureSkipTLSVerify bool
	// AuthFile is a docker config.json or containers auth.json to read
	// credentials from. Empty means $REGISTRY_AUTH_FILE, else docker's
	// config.json (with its credential helpers), falling back to
	// $XDG_RUNTIME_DIR/containers/auth.json.
	AuthFile string
	// UserAgent is sent with every request; empty means oras-go's default.
	UserAgent string
	// Timeout bounds how long one request waits for the registry's answer;
	// zero means DefaultTimeout.
	Timeout time.Duration
	// Log receives the requests that wait (a stall) and, with Debug, every
	// request; nil means silence.
	Log func(format string, args ...any)
	// Debug logs every request to Log: method, URL (secrets redacted),
	// status, duration; each retry is a request of its own. Credentials and
	// tokens are never logged.
	Debug bool
}

// Sentinel errors; test with errors.Is.
var (
	// ErrInvalidOption: an option value that cannot work, such as
	// credentials without a colon.
	ErrInvalidOption = errors.New("invalid option")
	// ErrInvalidReference: a registry host or repository name that does
	// not parse.
	ErrInvalidReference = errors.New("invalid reference")
)

// Repository is one registry repository, as oras-go serves it: blobs,
// manifests, tags, mounts.
type Repository = remote.Repository

// Client builds oras-go repositories for one side (source or destination)
// that share one HTTP client, one credential source and one token cache.
type Client struct {
	side Side
	auth *auth.Client
	// base is the HTTP client below authentication and retries, for
	// requests that carry their own credentials (Harbor's API).
	base  *http.Client
	plain bool
	// hostNoAPI records the registry hosts a Referrers call found without
	// the referrers API. A registry has the API for every repository or for
	// none, so the other repositories are not probed again: one probe per
	// registry, not one per repository.
	hostNoAPI sync.Map
	// repos is the Repository of each host/path while something holds it
	// (weakly: see Repository).
	repos repositories
}

// New builds the client of one side. hosts are the registries it will talk
// to: when all of them are on loopback, a token realm on loopback is
// allowed too (oras-go refuses loopback realms by default, against
// registries that point clients at local services).
func New(side Side, opts Options, hosts ...string) (*Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 32
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	transport.ResponseHeaderTimeout = timeout
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	tlsConf, err := tlsConfig(opts)
	if err != nil {
		return nil, side.wrapOption(err)
	}
	transport.TLSClientConfig = tlsConf
	credFunc, err := credentialFunc(opts)
	if err != nil {
		return nil, side.wrapOption(err)
	}
	base := &http.Client{Transport: retry.NewTransport(watch{next: transport, timeout: timeout, logf: logf, debug: opts.Debug})}
	ac := &auth.Client{
		Client:     base,
		Cache:      auth.NewCache(),
		Credential: credFunc,
	}
	if opts.UserAgent != "" {
		ac.SetUserAgent(opts.UserAgent)
	}
	if allLoopback(hosts) {
		ac.BlockedRealmPrefixes = slices.DeleteFunc(auth.DefaultBlockedRealmPrefixes(), func(p netip.Prefix) bool {
			return p.Addr().IsLoopback()
		})
	}
	return &Client{side: side, auth: ac, base: base, plain: opts.PlainHTTP}, nil
}

// Side is the side this client talks to.
func (c *Client) Side() Side { return c.side }

// Scheme is "http" with PlainHTTP, else "https".
func (c *Client) Scheme() string {
	if c.plain {
		return "http"
	}
	return "https"
}

// Credential is what the client would send to host.
func (c *Client) Credential(ctx context.Context, host string) (auth.Credential, error) {
	return c.auth.Credential(ctx, host)
}

// HTTP is the client's transport without registry authentication, for
// APIs beside the registry's (Harbor's) that take credentials per request.
func (c *Client) HTTP() *http.Client { return c.base }

// Repository returns the oras-go repository registryHost/repo. A referrer
// pushed to a registry without the referrers API is added to the subject's
// referrers index (merged with what is there, never replacing it), and the
// old index is never deleted (SkipReferrersGC): ferry removes nothing at a
// destination.
//
// Callers at the same time get the same instance: oras-go serialises a
// repository's referrers-index updates per instance, so concurrent pushes
// to one repository must share one. Once nobody holds it, it is let go (a
// later caller gets a new one, which learns the registry's referrers
// capability from NoReferrersAPI): a run over tens of thousands of
// repositories does not keep one for each to the end.
func (c *Client) Repository(registryHost, repo string) (*remote.Repository, error) {
	return c.repos.get(registryHost+"/"+repo, func() (*remote.Repository, error) {
		r := &remote.Repository{
			Client:          uploadTracker{c.auth},
			Reference:       registry.Reference{Registry: registryHost, Repository: repo},
			PlainHTTP:       c.plain,
			SkipReferrersGC: true,
		}
		if err := r.Reference.ValidateRepository(); err != nil {
			return nil, fmt.Errorf("%w: %s/%s: %v", ErrInvalidReference, registryHost, repo, err)
		}
		return r, nil
	})
}

// repositories maps host/path to a Repository by weak pointer: an entry
// lives as long as its instance is held somewhere, and is removed when
// the instance is collected.
type repositories struct {
	mu sync.Mutex
	m  map[string]weak.Pointer[remote.Repository]
	// high is the most entries m has held since it was made: a Go map
	// keeps its table when entries are deleted, so m is made anew when it
	// holds a quarter of that.
	high int
}

// get returns the live instance for key, or the one build makes.
func (rs *repositories) get(key string, build func() (*remote.Repository, error)) (*remote.Repository, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r := rs.m[key].Value(); r != nil {
		return r, nil
	}
	r, err := build()
	if err != nil {
		return nil, err
	}
	if rs.m == nil {
		rs.m = map[string]weak.Pointer[remote.Repository]{}
	}
	wp := weak.Make(r)
	rs.m[key] = wp
	rs.high = max(rs.high, len(rs.m))
	runtime.AddCleanup(r, rs.forget, entry{key, wp})
	return r, nil
}

// entry is a cache entry that a cleanup removes.
type entry struct {
	key string
	wp  weak.Pointer[remote.Repository]
}

// forget removes e unless key has been given a newer instance since.
func (rs *repositories) forget(e entry) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.m[e.key] != e.wp {
		return
	}
	delete(rs.m, e.key)
	if rs.high > 1024 && len(rs.m) < rs.high/4 {
		// Not maps.Clone, which may copy the table at its size.
		m := make(map[string]weak.Pointer[remote.Repository], len(rs.m))
		for k, v := range rs.m {
			m[k] = v
		}
		rs.m, rs.high = m, len(m)
	}
}

// Registry returns an oras-go registry client for host, for listing
// repositories and tags (ferry inventory).
func (c *Client) Registry(host string) (*remote.Registry, error) {
	reg := &remote.Registry{RepositoryOptions: remote.RepositoryOptions{Client: c.auth, PlainHTTP: c.plain}}
	reg.Reference.Registry = host
	if err := reg.Reference.ValidateRegistry(); err != nil {
		return nil, fmt.Errorf("%w: registry %q is not a valid host[:port]", ErrInvalidReference, host)
	}
	return reg, nil
}

// credentialFunc returns static credentials for "user:password", or the
// credential store.
func credentialFunc(opts Options) (auth.CredentialFunc, error) {
	if creds := opts.Credentials; creds != "" {
		user, pass, ok := strings.Cut(creds, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%w: credentials must be USER:PASSWORD (the user part is empty or there is no colon)", ErrInvalidOption)
		}
		cred := auth.Credential{Username: user, Password: pass}
		return func(_ context.Context, _ string) (auth.Credential, error) { return cred, nil }, nil
	}
	store, err := credentialStore(opts.AuthFile)
	if err != nil {
		return nil, err
	}
	return credentials.Credential(store), nil
}

// credentialStore opens the file docker, podman and skopeo keep
// credentials in; see Options.AuthFile.
func credentialStore(authFile string) (credentials.Store, error) {
	if authFile == "" {
		authFile = os.Getenv("REGISTRY_AUTH_FILE")
	}
	if authFile != "" {
		store, err := credentials.NewStore(authFile, credentials.StoreOptions{AllowPlaintextPut: true})
		if err != nil {
			return nil, fmt.Errorf("reading credentials from %s: %w", authFile, err)
		}
		return store, nil
	}
	docker, err := credentials.NewStoreFromDocker(credentials.StoreOptions{AllowPlaintextPut: true})
	if err != nil {
		return nil, fmt.Errorf("reading docker credentials (config.json): %w", err)
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		path := filepath.Join(dir, "containers", "auth.json")
		if _, err := os.Stat(path); err == nil {
			if containers, err := credentials.NewStore(path, credentials.StoreOptions{}); err == nil {
				return credentials.NewStoreWithFallbacks(docker, containers), nil
			}
		}
	}
	return docker, nil
}

// allLoopback reports whether every host:port is on the loopback interface.
func allLoopback(hosts []string) bool {
	if len(hosts) == 0 {
		return false
	}
	for _, h := range hosts {
		name := h
		if host, _, err := net.SplitHostPort(h); err == nil {
			name = host
		}
		if name == "localhost" {
			continue
		}
		ip, err := netip.ParseAddr(name)
		if err != nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// FetchURL GETs a foreign layer from one of its descriptor's URLs (http or
// https only), with the side's TLS settings and no registry credentials.
// The caller verifies what it reads.
func (c *Client) FetchURL(ctx context.Context, u string) (io.ReadCloser, error) {
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return nil, fmt.Errorf("%s: only http and https URLs are fetched", u)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.base.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	return resp.Body, nil
}
