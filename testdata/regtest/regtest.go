// Package regtest starts real registry servers on 127.0.0.1 for ferry's
// tests, demo and benchmark: CNCF distribution v3 (the tool pinned in go.mod,
// run as `go tool registry serve CONFIG`) and Debian's docker-registry 2.8,
// the generation Harbor runs inside. Servers bind to loopback only, store
// their data in a directory of their own, and are stopped by whoever started
// them.
package regtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Kind names a registry implementation.
type Kind string

const (
	// Distribution is CNCF distribution v3, pinned in go.mod as a tool.
	Distribution Kind = "distribution-v3"
	// Debian is Debian's docker-registry package (distribution 2.8).
	Debian Kind = "docker-registry-2.8"
)

// Kinds is every implementation the end-to-end suites run against.
var Kinds = []Kind{Distribution, Debian}

// DebianBinary is where Debian's docker-registry package installs the server.
const DebianBinary = "/usr/bin/docker-registry"

// Server is a running registry.
type Server struct {
	Kind Kind
	// Host is host:port on 127.0.0.1.
	Host string
	// Dir holds the server's config and storage.
	Dir string
	// CAFile is the PEM CA that signed the server's certificate (TLS only).
	CAFile string
	// CertDir is a certs.d-style directory for clients (TLS only).
	CertDir string

	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

// Options configure a server. The zero value is an open, plain-HTTP registry.
type Options struct {
	// Users, when not empty, maps user names to passwords that the server
	// requires with basic auth (htpasswd).
	Users map[string]string
	// TLS serves HTTPS with a certificate signed by a CA made for this
	// server; Server.CAFile is that CA.
	TLS bool
	// ClientCerts (with TLS) requires a client certificate signed by the
	// same CA: mutual TLS. Server.CertDir then holds ca.crt, client.cert and
	// client.key, as docker's certs.d does.
	ClientCerts bool
	// Token, when set, makes the server require tokens from this server.
	Token *TokenServer
	// Port, when set, is the port on 127.0.0.1 to listen on; zero picks a
	// free one.
	Port int
	// AllowLayerURLs, a regular expression, is the URLs that foreign layers
	// may carry (validation.manifests.urls.allow); distribution 2.8 and v3
	// refuse manifests with foreign layers without it (Harbor turns
	// validation off).
	AllowLayerURLs string
}

// Start runs a registry of the given kind with its storage under dir and
// waits until it answers /v2/. The caller must Stop it.
func Start(ctx context.Context, kind Kind, dir string, opts Options) (*Server, error) {
	bin, args, err := command(kind)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port := opts.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	extra, caFile, certDir, err := securityConfig(dir, opts)
	if err != nil {
		return nil, err
	}
	if opts.AllowLayerURLs != "" {
		extra += fmt.Sprintf("validation:\n  manifests:\n    urls:\n      allow:\n        - '%s'\n", opts.AllowLayerURLs)
	}
	config := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
%s`, filepath.Join(dir, "storage"), host, extra)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append(args, cfgPath)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", kind, err)
	}
	s := &Server{Kind: kind, Host: host, Dir: dir, CAFile: caFile, CertDir: certDir, cmd: cmd, done: make(chan error, 1), log: logf}
	go func() { s.done <- cmd.Wait() }()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		logText, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("%s on %s did not start: %w\n%s", kind, host, err, tail(string(logText), 2000))
	}
	return s, nil
}

// Stop ends the server and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	s.log.Close()
}

func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	scheme := "http"
	if s.CAFile != "" {
		scheme = "https"
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		conf := &tls.Config{RootCAs: pool}
		if pair, err := tls.LoadX509KeyPair(filepath.Join(s.CertDir, "client.cert"), filepath.Join(s.CertDir, "client.key")); err == nil {
			conf.Certificates = []tls.Certificate{pair}
		}
		client.Transport = &http.Transport{TLSClientConfig: conf}
	}
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			return fmt.Errorf("exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get(scheme + "://" + s.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("timed out waiting for /v2/")
}

// securityConfig writes htpasswd and certificates as opts asks and returns
// the YAML that enables them, to follow the http section.
func securityConfig(dir string, opts Options) (yaml, caFile, certDir string, err error) {
	if opts.TLS {
		certs, err := makeCerts(dir, opts.ClientCerts)
		if err != nil {
			return "", "", "", err
		}
		caFile, certDir = certs.ca, certs.clientDir
		yaml += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", certs.cert, certs.key)
		if opts.ClientCerts {
			yaml += fmt.Sprintf("    clientcas:\n      - %s\n", certs.ca)
		}
	}
	switch {
	case opts.Token != nil:
		yaml += opts.Token.config()
	case len(opts.Users) > 0:
		var lines []string
		for user, pass := range opts.Users {
			hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
			if err != nil {
				return "", "", "", err
			}
			lines = append(lines, user+":"+string(hash))
		}
		path := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return "", "", "", err
		}
		yaml += fmt.Sprintf("auth:\n  htpasswd:\n    realm: ferry-test\n    path: %s\n", path)
	}
	return yaml, caFile, certDir, nil
}

// New starts a server for a test and stops it when the test ends.
func New(t testing.TB, kind Kind) *Server {
	t.Helper()
	return NewWith(t, kind, Options{})
}

// NewWith is New with options.
func NewWith(t testing.TB, kind Kind, opts Options) *Server {
	t.Helper()
	s, err := Start(context.Background(), kind, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

var (
	distOnce sync.Once
	distBin  string
	distErr  error
)

// command is the executable and arguments (before the config path) of kind.
func command(kind Kind) (string, []string, error) {
	switch kind {
	case Distribution:
		distOnce.Do(func() { distBin, distErr = distributionBinary() })
		return distBin, []string{"serve"}, distErr
	case Debian:
		if _, err := os.Stat(DebianBinary); err != nil {
			return "", nil, fmt.Errorf("%s is missing: install Debian's docker-registry package (make deps does it)", DebianBinary)
		}
		return DebianBinary, []string{"serve"}, nil
	}
	return "", nil, fmt.Errorf("unknown registry kind %q", kind)
}

// distributionBinary builds (or finds in the build cache) the registry tool
// pinned in testdata/tools/go.mod, a module of its own so that its ~100
// requirements stay out of the go.mod users build ferry with.
// FERRY_REGISTRY_BIN overrides it.
func distributionBinary() (string, error) {
	if p := os.Getenv("FERRY_REGISTRY_BIN"); p != "" {
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "tool", "-n", "registry")
	cmd.Dir = filepath.Join(root, "testdata", "tools")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("go tool -n registry: %v: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("go tool -n registry: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// CPU is the user+system CPU time the server has used so far, read from
// /proc; zero where that cannot be read.
func (s *Server) CPU() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}
