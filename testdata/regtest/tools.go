package regtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// toolVersions are the pinned versions of the clients tests check ferry's
// work with; the Makefile builds them (make test-tools) and says where in
// FERRY_COSIGN, FERRY_ORAS.
var toolVersions = map[string]string{"cosign": "v2.6.5", "oras": "v1.3.6", "helm": "v3.22.0"}

// Tool returns the path of a pinned client (cosign, oras): $FERRY_<NAME>,
// else where make test-tools puts it. A test that needs one and cannot
// find it fails, saying how to build it; it does not skip.
func Tool(t testing.TB, name string) string {
	t.Helper()
	env := map[string]string{"cosign": "FERRY_COSIGN", "oras": "FERRY_ORAS", "helm": "FERRY_HELM"}[name]
	path := os.Getenv(env)
	if path == "" {
		home, _ := os.UserHomeDir()
		path = filepath.Join(home, ".cache", "ferry-tools", name+"-"+toolVersions[name], name)
	}
	if _, err := exec.LookPath(path); err != nil {
		t.Fatalf("%s %s is not built (%v): run 'make test-tools', or set %s", name, toolVersions[name], err, env)
	}
	return path
}

// Run runs a tool and fails the test with its output if it fails.
func Run(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
	}
	return string(out)
}

// CosignEnv is the environment cosign runs in for tests and the demo: the
// key pair's password, no prompts, its TUF cache under dir, and every
// request to a host that is not on loopback sent to a closed port on
// 127.0.0.1 (cosign looks for Sigstore's public TUF repository even when
// it verifies with a key and no transparency log; here it fails at once,
// and nothing leaves the machine, not even a DNS query).
func CosignEnv(dir string) []string {
	return []string{
		"COSIGN_PASSWORD=test-only", "COSIGN_YES=true", "TUF_ROOT=" + filepath.Join(dir, "tuf"),
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=",
		"https_proxy=http://127.0.0.1:9", "http_proxy=http://127.0.0.1:9", "no_proxy=",
	}
}
