package bundle_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/ferry-oci/ferry/bundle"
	"github.com/ferry-oci/ferry/testdata/imagegen"
	"github.com/ferry-oci/ferry/testdata/regtest"
)

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
	_, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, Source: bundle.RegistryOptions{CAFile: src.CAFile}})
	if err == nil || !strings.Contains(err.Error(), "source") || !strings.Contains(err.Error(), "--src-creds") {
		t.Fatalf("export without credentials: %v", err)
	}
	// Without the CA, TLS fails.
	_, err = bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out, Source: bundle.RegistryOptions{Credentials: "alice:s3cret"}})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("export without the CA: %v", err)
	}
	if _, err := bundle.Export(ctx, bundle.ExportOptions{References: refs, Output: out,
		Source: bundle.RegistryOptions{Credentials: "alice:s3cret", CAFile: src.CAFile}}); err != nil {
		t.Fatal(err)
	}

	// Import with the robot account from flags.
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/flags", Dest: bundle.RegistryOptions{Credentials: robot + ":" + robotPass, CAFile: dst.CAFile}}); err != nil {
		t.Fatal(err)
	}
	// And from docker's config.json.
	cfgDir := t.TempDir()
	authb64 := base64.StdEncoding.EncodeToString([]byte(robot + ":" + robotPass))
	os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"auths":{"`+dst.Host+`":{"auth":"`+authb64+`"}}}`), 0o600)
	t.Setenv("DOCKER_CONFIG", cfgDir)
	if _, err := bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/config", Dest: bundle.RegistryOptions{CAFile: dst.CAFile}}); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"flags", "config"} {
		for _, img := range set.Images {
			repo, _ := secureRepo(t, dst, robot, robotPass)(prefix + "/" + img.Repository)
			got, err := repo.Resolve(ctx, img.Tag)
			if err != nil || got.Digest != img.Root.Digest {
				t.Errorf("%s/%s:%s at the destination: %v %v", prefix, img.Repository, img.Tag, got.Digest, err)
			}
		}
	}
	// A wrong password fails, and the error never prints it.
	_, err = bundle.Import(ctx, bundle.ImportOptions{Bundle: out, To: dst.Host + "/x", Dest: bundle.RegistryOptions{Credentials: robot + ":wrong-pass", CAFile: dst.CAFile}})
	if err == nil || !strings.Contains(err.Error(), "destination") || !strings.Contains(err.Error(), "rejected the credentials") || strings.Contains(err.Error(), "wrong-pass") {
		t.Fatalf("import with a wrong password: %v", err)
	}
}
