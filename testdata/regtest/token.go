package regtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TokenServer is a small token service in the style of docker's token
// auth, for tests: it checks basic credentials and issues ES256-signed JWTs
// carrying an x5c chain that the registries trust through their
// rootcertbundle. Tokens live TTL; Issued counts them.
type TokenServer struct {
	URL      string
	Service  string
	Issuer   string
	CertFile string // the signing certificate, PEM: the registries' rootcertbundle
	Users    map[string]string
	Issued   atomic.Int32

	mu      sync.Mutex
	ttl     time.Duration
	key     *ecdsa.PrivateKey
	certDER []byte
}

// NewTokenServer starts a token server on 127.0.0.1 for the test.
func NewTokenServer(t testing.TB, users map[string]string, ttl time.Duration) *TokenServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{CommonName: "ferry test token signer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "token-signer.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := &TokenServer{Service: "ferry-test-registry", Issuer: "ferry-test-token-server", CertFile: certFile, Users: users, ttl: ttl, key: key, certDER: der}
	srv := httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(srv.Close)
	ts.URL = srv.URL
	return ts
}

// SetTTL changes the lifetime of the tokens issued from now on.
func (ts *TokenServer) SetTTL(d time.Duration) {
	ts.mu.Lock()
	ts.ttl = d
	ts.mu.Unlock()
}

// Options configures a registry to trust this token server.
func (ts *TokenServer) Options() Options {
	return Options{Token: ts}
}

func (ts *TokenServer) config() string {
	return "auth:\n  token:\n    realm: " + ts.URL + "/token\n    service: " + ts.Service + "\n    issuer: " + ts.Issuer + "\n    rootcertbundle: " + ts.CertFile + "\n"
}

// tokenLeeway is how long past exp distribution still accepts a token.
const tokenLeeway = 60 * time.Second

type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (ts *TokenServer) serve(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || ts.Users[user] != pass || pass == "" {
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
		return
	}
	var grants []access
	for _, scope := range r.URL.Query()["scope"] {
		// repository:NAME:ACTIONS (NAME may not contain ':' here).
		parts := strings.Split(scope, ":")
		if len(parts) != 3 {
			continue
		}
		grants = append(grants, access{Type: parts[0], Name: parts[1], Actions: strings.Split(parts[2], ",")})
	}
	ts.mu.Lock()
	ttl := ts.ttl
	ts.mu.Unlock()
	now := time.Now()
	claims := map[string]any{
		"iss": ts.Issuer, "sub": user, "aud": ts.Service,
		// Registries accept a token up to 60 s past its exp: set exp back by
		// that much, so that TTL is the token's real life.
		// exp is rounded up to the second, so a token lives at least TTL.
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(ttl - tokenLeeway + time.Second - 1).Unix(),
		"jti":    base64.RawURLEncoding.EncodeToString(big.NewInt(now.UnixNano()).Bytes()),
		"access": grants,
	}
	token, err := ts.sign(claims)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ts.Issued.Add(1)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token": token, "access_token": token, "expires_in": int(ttl.Seconds()), "issued_at": now.Format(time.RFC3339)})
}

// sign makes an ES256 JWT whose header carries the signing certificate.
func (ts *TokenServer) sign(claims map[string]any) (string, error) {
	header, _ := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(ts.certDER)}})
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signing := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(body)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
