package bundle_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/bundle/registry"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

// failedOn reports whether err is a registry error of that side (the
// typed error, not the words "source" or "destination" in its text).
func failedOn(err error, side registry.Side) bool {
	var re *registry.Error
	return errors.As(err, &re) && re.Side == side
}

// secureRepo is an oras repository for a TLS registry with basic auth,
// for seeding and checking from the test.
func secureRepo(t *testing.T, s *regtest.Server, user, pass string) func(string) (*remote.Repository, error) {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &auth.Client{
		Client:     &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		Credential: auth.StaticCredential(s.Host, auth.Credential{Username: user, Password: pass}),
	}
	return func(name string) (*remote.Repository, error) {
		repo, err := remote.NewRepository(s.Host + "/" + name)
		if err != nil {
			return nil, err
		}
		repo.Client = client
		return repo, nil
	}
}

func TestTLSAndBasicAuth(t *testing.T) {
	ctx := context.Background()
	const robot = "robot$mirror+ci" // Harbor robot account names carry $ and +
	const robotPass = "p@ss:w0rd$"  // everything after the first colon is the password
	src := regtest.NewWith(t, regtest.Distribution, regtest.Options{TLS: true, Users: map[string]string{"alice": "s3cret"}})
	dst := regtest.NewWith(t, regtest.Debian, regtest.Options{TLS: true, Users: map[string]string{robot: robotPass}})
	set, _ := imagegen.Generate(imagegen.Options{Apps: 1})
	if err := set.PushWith(ctx, secureRepo(t, src, "alice", "s3cret")); err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, img := range set.Images {
		refs = append(refs, img.Reference(src.Host))
	}
	out := filepath.Join(t.TempDir(), "bundle")

	// No credentials: the source refuses, and the error says it was the source.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	_, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, Source: registry.Options{CAFile: src.CAFile}})
	if !failedOn(err, registry.Source) || !strings.Contains(err.Error(), "--src-creds") {
		t.Fatalf("export without credentials: %v", err)
	}
	// Without the CA, TLS fails.
	_, err = bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, Source: registry.Options{Credentials: "alice:s3cret"}})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("export without the CA: %v", err)
	}
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out,
		Source: registry.Options{Credentials: "alice:s3cret", CAFile: src.CAFile}}); err != nil {
		t.Fatal(err)
	}

	// No secret in the bundle: not in ferry.json, index.json or anywhere.
	filepath.Walk(out, func(path string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if data, _ := os.ReadFile(path); strings.Contains(string(data), "s3cret") {
				t.Errorf("%s contains the password", path)
			}
		}
		return nil
	})

	// Import with the robot account from flags.
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/flags", Dest: registry.Options{Credentials: robot + ":" + robotPass, CAFile: dst.CAFile}}); err != nil {
		t.Fatal(err)
	}
	// And from docker's config.json.
	cfgDir := t.TempDir()
	authb64 := base64.StdEncoding.EncodeToString([]byte(robot + ":" + robotPass))
	os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"auths":{"`+dst.Host+`":{"auth":"`+authb64+`"}}}`), 0o600)
	t.Setenv("DOCKER_CONFIG", cfgDir)
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/config", Dest: registry.Options{CAFile: dst.CAFile}}); err != nil {
		t.Fatal(err)
	}
	// And from podman's auth.json, when docker's config.json has nothing.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	runtime := t.TempDir()
	os.MkdirAll(filepath.Join(runtime, "containers"), 0o700)
	os.WriteFile(filepath.Join(runtime, "containers", "auth.json"), []byte(`{"auths":{"`+dst.Host+`":{"auth":"`+authb64+`"}}}`), 0o600)
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/podman", Dest: registry.Options{CAFile: dst.CAFile}}); err != nil {
		t.Fatalf("import with podman's auth.json: %v", err)
	}
	for _, prefix := range []string{"flags", "config", "podman"} {
		for _, img := range set.Images {
			repo, _ := secureRepo(t, dst, robot, robotPass)(prefix + "/" + img.Repository)
			got, err := repo.Resolve(ctx, img.Tag)
			if err != nil || got.Digest != img.Root.Digest {
				t.Errorf("%s/%s:%s at the destination: %v %v", prefix, img.Repository, img.Tag, got.Digest, err)
			}
		}
	}
	// A wrong password fails, and the error never prints it.
	_, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/x", Dest: registry.Options{Credentials: robot + ":wrong-pass", CAFile: dst.CAFile}})
	if !failedOn(err, registry.Destination) || !strings.Contains(err.Error(), "--dest-creds") || strings.Contains(err.Error(), "wrong-pass") {
		t.Fatalf("import with a wrong password: %v", err)
	}
}

func TestMutualTLSCertDirAndInsecure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, set, out := exportSet(t, regtest.Distribution)
	dst := regtest.NewWith(t, regtest.Debian, regtest.Options{TLS: true, ClientCerts: true})
	// The CA alone is not enough: the registry wants a client certificate.
	_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/m", Dest: registry.Options{CAFile: dst.CAFile}})
	if !failedOn(err, registry.Destination) {
		t.Fatalf("import without a client certificate: %v", err)
	}
	// A certs.d directory with ca.crt, client.cert and client.key is.
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/m", Dest: registry.Options{CertDir: dst.CertDir}}); err != nil {
		t.Fatalf("import with --dest-cert-dir: %v", err)
	}
	// A key without its certificate is a usage error that names the file.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "client.key"), []byte("x"), 0o600)
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/m", Dest: registry.Options{CertDir: bad}}); !errors.Is(err, bundle.ErrInvalidOption) || !strings.Contains(err.Error(), "client.key") {
		t.Fatalf("cert dir with a lone key: %v", err)
	}

	// --dest-tls-verify=false accepts a certificate nobody vouches for.
	plainTLS := regtest.NewWith(t, regtest.Distribution, regtest.Options{TLS: true})
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: plainTLS.Host + "/m", Dest: registry.Options{}}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("import to an unknown CA: %v", err)
	}
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: plainTLS.Host + "/m", Dest: registry.Options{InsecureSkipTLSVerify: true}}); err != nil {
		t.Fatalf("import with verification off: %v", err)
	}
	for _, img := range set.Images {
		repo, _ := remote.NewRepository(plainTLS.Host + "/m/" + img.Repository)
		repo.Client = &auth.Client{Client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
		if got, err := repo.Resolve(ctx, img.Tag); err != nil || got.Digest != img.Root.Digest {
			t.Errorf("%s: %v %v", img.Repository, got.Digest, err)
		}
	}
}

func TestTokenAuth(t *testing.T) {
	t.Parallel()
	const robot, secret = "robot$mirror+ci", "s3cret"
	for _, kind := range regtest.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			ts := regtest.NewTokenServer(t, map[string]string{robot: secret}, time.Hour)
			src := regtest.NewWith(t, regtest.Distribution, ts.Options())
			dst := regtest.NewWith(t, kind, ts.Options())
			set, _ := imagegen.Generate(imagegen.Options{Apps: 3, LayerSize: 256 << 10})
			creds := registry.Options{PlainHTTP: true, Credentials: robot + ":" + secret}
			// Seed the source through ferry's own client: import a bundle
			// exported from an open registry.
			open := regtest.New(t, regtest.Distribution)
			if err := set.Push(ctx, open.Host); err != nil {
				t.Fatal(err)
			}
			var refs []string
			for _, img := range set.Images {
				refs = append(refs, img.Reference(open.Host))
			}
			seedDir := filepath.Join(t.TempDir(), "seed")
			if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: seedDir, Source: plain}); err != nil {
				t.Fatal(err)
			}
			if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: seedDir, To: src.Host, Dest: creds}); err != nil {
				t.Fatalf("import into a token-auth registry: %v", err)
			}
			refs = refs[:0]
			for _, img := range set.Images {
				refs = append(refs, img.Reference(src.Host))
			}
			out := filepath.Join(t.TempDir(), "bundle")
			if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, Source: creds}); err != nil {
				t.Fatalf("export from a token-auth registry: %v", err)
			}

			// Tokens that die after two seconds, and a slow link: they
			// expire in the middle of the import, and ferry fetches new ones.
			ts.SetTTL(2 * time.Second)
			var puts atomic.Int32
			proxy := regtest.NewProxy(t, dst, func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodPut {
					puts.Add(1)
					time.Sleep(400 * time.Millisecond)
				}
				return false
			})
			before := ts.Issued.Load()
			start := time.Now()
			if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: proxy + "/m", Dest: creds, Jobs: 2}); err != nil {
				t.Fatalf("import while tokens expire: %v", err)
			}
			issued := ts.Issued.Load() - before
			if time.Since(start) < 3*time.Second {
				t.Fatalf("the import took %s: too short for a token to expire in it", time.Since(start))
			}
			if issued < 2 {
				t.Errorf("%d tokens issued during an import that outlived them", issued)
			}
			if limit := 4*puts.Load() + 40; issued > limit {
				t.Errorf("%d tokens for %d uploads: looping on 401?", issued, puts.Load())
			}
			ts.SetTTL(time.Hour)
			// What arrived is complete, checked with a fresh token.
			c, _ := registry.New(registry.Destination, creds, dst.Host)
			for _, img := range set.Images {
				repo, err := c.Repository(dst.Host, "m/"+img.Repository)
				if err != nil {
					t.Fatal(err)
				}
				got, err := repo.Resolve(ctx, img.Tag)
				if err != nil || got.Digest != img.Root.Digest {
					t.Errorf("%s:%s: %v %v", img.Repository, img.Tag, got.Digest, err)
				}
			}
			// Wrong credentials: the token server refuses, ferry stops.
			_, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/x", Dest: registry.Options{PlainHTTP: true, Credentials: robot + ":nope"}})
			if err == nil || strings.Contains(err.Error(), "nope") {
				t.Fatalf("import with a wrong password: %v", err)
			}
		})
	}
}
