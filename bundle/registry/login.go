package registry

import (
	"context"
	"fmt"
	"net/http"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
)

// Login checks user and password against the registry at host and, if it
// accepts them, saves them where docker, podman and skopeo read them (see
// Options.AuthFile). It never prints the password.
func Login(ctx context.Context, host, user, password string, opts Options) error {
	if user == "" || password == "" {
		return fmt.Errorf("%w: login needs a user name and a password", ErrInvalidOption)
	}
	store, err := credentialStore(opts.AuthFile)
	if err != nil {
		return err
	}
	opts.Credentials = ""
	c, err := New(Destination, opts, host)
	if err != nil {
		return err
	}
	reg, err := c.Registry(host)
	if err != nil {
		return err
	}
	err = credentials.Login(ctx, store, reg, auth.Credential{Username: user, Password: password})
	if Status(err) == http.StatusUnauthorized {
		return fmt.Errorf("%w: the registry rejected user %q; a Harbor robot account's name contains '$' (robot$mirror+ci): in a shell, put it in single quotes, or the shell replaces $mirror with nothing", err, user)
	}
	return err
}

// Logout forgets the credentials saved for host.
func Logout(ctx context.Context, host string, opts Options) error {
	store, err := credentialStore(opts.AuthFile)
	if err != nil {
		return err
	}
	return credentials.Logout(ctx, store, host)
}
