package bundle

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// RegistryOptions say how to reach one side's registries. The zero value
// means HTTPS with the system's CAs and the credentials of docker's
// config.json, if any.
type RegistryOptions struct {
	// PlainHTTP talks HTTP instead of HTTPS.
	PlainHTTP bool
	// Credentials is "user:password". Empty means docker's config.json
	// (and its credential helpers). Everything after the first colon is the
	// password, so robot accounts like robot$mirror+ci work.
	Credentials string
	// CAFile is a PEM bundle trusted in addition to the system's CAs.
	CAFile string
	// UserAgent is sent with every request; empty means oras-go's default.
	UserAgent string
}

// ErrInvalidOption: an option value that cannot work, such as credentials
// without a colon.
var ErrInvalidOption = errors.New("invalid option")

// client builds oras-go repositories that share one HTTP client, one
// credential source and one token cache.
type client struct {
	opts  RegistryOptions
	auth  *auth.Client
	plain bool
}

func newClient(opts RegistryOptions) (*client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 32
	transport.ResponseHeaderTimeout = 5 * time.Minute
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", opts.CAFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	credFunc, err := credentialFunc(opts.Credentials)
	if err != nil {
		return nil, err
	}
	ac := &auth.Client{
		Client:     &http.Client{Transport: retry.NewTransport(transport)},
		Cache:      auth.NewCache(),
		Credential: credFunc,
	}
	if opts.UserAgent != "" {
		ac.SetUserAgent(opts.UserAgent)
	}
	return &client{opts: opts, auth: ac, plain: opts.PlainHTTP}, nil
}

// credentialFunc returns static credentials for "user:password", or docker's
// credential store.
func credentialFunc(creds string) (auth.CredentialFunc, error) {
	if creds != "" {
		user, pass, ok := strings.Cut(creds, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%w: credentials must be USER:PASSWORD (the user part is empty or there is no colon)", ErrInvalidOption)
		}
		cred := auth.Credential{Username: user, Password: pass}
		return func(_ context.Context, _ string) (auth.Credential, error) { return cred, nil }, nil
	}
	store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading docker credentials (config.json): %w", err)
	}
	return credentials.Credential(store), nil
}

// repository returns the oras-go repository registryHost/repo.
func (c *client) repository(registryHost, repo string) (*remote.Repository, error) {
	r := &remote.Repository{
		Client:    uploadTracker{c.auth},
		Reference: registry.Reference{Registry: registryHost, Repository: repo},
		PlainHTTP: c.plain,
	}
	if err := r.Reference.ValidateRepository(); err != nil {
		return nil, fmt.Errorf("%w: %s/%s: %v", ErrInvalidReference, registryHost, repo, err)
	}
	return r, nil
}

// NewRegistry returns an oras-go registry client for host, for listing
// repositories and tags (ferry inventory).
func NewRegistry(host string, opts RegistryOptions) (*remote.Registry, error) {
	c, err := newClient(opts)
	if err != nil {
		return nil, err
	}
	reg := &remote.Registry{RepositoryOptions: remote.RepositoryOptions{Client: c.auth, PlainHTTP: c.plain}}
	reg.Reference.Registry = host
	if err := reg.Reference.ValidateRegistry(); err != nil {
		return nil, fmt.Errorf("%w: registry %q is not a valid host[:port]", ErrInvalidReference, host)
	}
	return reg, nil
}
