package bundle

import (
	"errors"
	"strings"
	"testing"
)

func TestParseReference(t *testing.T) {
	t.Parallel()
	hex := strings.Repeat("a", 64)
	tests := []struct {
		in, want string
	}{
		{"alpine", "docker.io/library/alpine:latest"},
		{"alpine:3.20", "docker.io/library/alpine:3.20"},
		{"library/alpine:3.20", "docker.io/library/alpine:3.20"},
		{"docker.io/alpine", "docker.io/library/alpine:latest"},
		{"bitnami/redis:7", "docker.io/bitnami/redis:7"},
		{"quay.io/org/app@sha256:" + hex, "quay.io/org/app@sha256:" + hex},
		{"quay.io/org/app:1.0@sha256:" + hex, "quay.io/org/app:1.0@sha256:" + hex},
		{"localhost/app", "localhost/app:latest"},
		{"127.0.0.1:5000/a/b/c:v1", "127.0.0.1:5000/a/b/c:v1"},
		{"registry.local:5000/app", "registry.local:5000/app:latest"},
		// Every spelling of Docker Hub is docker.io: these are keys in
		// ferry.json and baselines.
		{"index.docker.io/alpine", "docker.io/library/alpine:latest"},
		{"registry-1.docker.io/library/alpine", "docker.io/library/alpine:latest"},
		{"registry-1.docker.io/bitnami/redis:7", "docker.io/bitnami/redis:7"},
		{"index.docker.io/library/alpine:3.20", "docker.io/library/alpine:3.20"},
	}
	for _, tt := range tests {
		got, err := ParseReference(tt.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tt.in, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("ParseReference(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{
		"", "UPPER/case", "alpine:", "alpine@sha256:../x", "alpine@sha256:" + strings.ToUpper(hex),
		"alpine:-bad", "a b", "quay.io/", "quay.io/org//app", "alpine:" + strings.Repeat("t", 129),
		"alpine@md5:" + hex[:32],
	} {
		if r, err := ParseReference(bad); err == nil || !errors.Is(err, ErrInvalidReference) {
			t.Errorf("ParseReference(%q) = %v, %v; want ErrInvalidReference", bad, r, err)
		} else if !strings.Contains(err.Error(), bad) {
			t.Errorf("error %q does not quote the input", err)
		}
	}
}

func TestRewrite(t *testing.T) {
	t.Parallel()
	tests := []struct{ to, src, want string }{
		{"harbor.internal/mirror", "docker.io/library/alpine:3.20", "harbor.internal/mirror/library/alpine:3.20"},
		{"harbor.internal/mirror/", "quay.io/org/app:1", "harbor.internal/mirror/org/app:1"},
		{"registry.local:5000", "ghcr.io/a/b:c", "registry.local:5000/a/b:c"},
		{"h.io/p/q", "docker.io/library/alpine:3.20", "h.io/p/q/library/alpine:3.20"},
	}
	for _, tt := range tests {
		d, err := ParseDestination(tt.to)
		if err != nil {
			t.Fatalf("ParseDestination(%q): %v", tt.to, err)
		}
		src, _ := ParseReference(tt.src)
		got, err := d.Rewrite(src)
		if err != nil || got.String() != tt.want {
			t.Errorf("%s via %s = %s, %v; want %s", tt.src, tt.to, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "https://harbor", "harbor/Mirror", "harbor/m:tag", "harbor@x", "har bor"} {
		if _, err := ParseDestination(bad); !errors.Is(err, ErrInvalidReference) {
			t.Errorf("ParseDestination(%q) = %v, want ErrInvalidReference", bad, err)
		}
	}
}

func TestReadImagesFile(t *testing.T) {
	t.Parallel()
	in := "# images for the trip\n\nalpine:3.20   # the base\n  quay.io/org/app:1\n#docker.io/skipped\n"
	refs, err := ReadImagesFile(strings.NewReader(in), "images.txt")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(refs, ",") != "alpine:3.20,quay.io/org/app:1" {
		t.Fatalf("got %q", refs)
	}
	_, err = ReadImagesFile(strings.NewReader("alpine\nNot/Valid\n"), "images.txt")
	if err == nil || !strings.Contains(err.Error(), "images.txt:2") {
		t.Fatalf("error %v does not name the line", err)
	}
	_, err = ReadImagesFile(strings.NewReader(strings.Repeat("a", maxImagesFileLine+1)), "long.txt")
	if err == nil || !strings.Contains(err.Error(), "long.txt") {
		t.Fatalf("over-long line: %v", err)
	}
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"alpine", "quay.io/a/b:c@sha256:" + strings.Repeat("0", 64), "localhost:5000/x", "a/b/c:d", "docker.io/library/x@sha256:../"} {
		f.Add(s, "harbor.internal/mirror")
	}
	f.Fuzz(func(t *testing.T, ref, to string) {
		r, err := ParseReference(ref)
		if err != nil {
			return
		}
		// A parsed reference renders to a string that parses to itself.
		again, err := ParseReference(r.String())
		if err != nil || again != r {
			t.Fatalf("%q → %q → %+v, %v", ref, r.String(), again, err)
		}
		d, err := ParseDestination(to)
		if err != nil {
			return
		}
		out, err := d.Rewrite(r)
		if err != nil {
			return
		}
		if out.Registry != d.Registry || !strings.HasSuffix(out.Repository, r.Repository) || out.Tag != r.Tag {
			t.Fatalf("rewrite of %s via %s = %s", r, to, out)
		}
	})
}

func FuzzReadImagesFile(f *testing.F) {
	f.Add("alpine\n# c\nquay.io/a/b:1 # x\n")
	f.Fuzz(func(t *testing.T, in string) {
		refs, err := ReadImagesFile(strings.NewReader(in), "f")
		if err != nil {
			return
		}
		for _, r := range refs {
			if _, err := ParseReference(r); err != nil {
				t.Fatalf("returned an unparsable reference %q", r)
			}
		}
	})
}

func TestParsePlatforms(t *testing.T) {
	got, err := ParsePlatforms([]string{"linux/amd64,linux/arm64/v8", "all", " windows/amd64 "})
	if err != nil || len(got) != 3 || got[1].Variant != "v8" || got[2].OS != "windows" {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []string{"linux", "linux/", "/amd64", "a/b/c/d"} {
		if _, err := ParsePlatforms([]string{bad}); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzReadMirrorConfig(f *testing.F) {
	f.Add("docker.io:\n  images:\n    busybox: []\n  images-by-semver:\n    alpine: \">= 3.12\"\n  newest: 2\n  exclude: [\"rc\"]\n")
	f.Add("quay.io:\n  tls-verify: false\n  credentials:\n    username: a\n    password: b\n")
	f.Add("x: [1, 2]\n")
	f.Fuzz(func(t *testing.T, in string) {
		cfg, err := ReadMirrorConfig(strings.NewReader(in), "mirror.yaml")
		if err != nil {
			if !errors.Is(err, ErrMirrorConfig) && !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("error %v is not a configuration error", err)
			}
			return
		}
		for _, r := range cfg.Registries {
			if r.Newest < 0 {
				return
			}
		}
	})
}
