package regtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

type certFiles struct {
	ca, cert, key string
	// clientDir holds ca.crt, client.cert and client.key, for clients.
	clientDir string
}

// makeCerts writes a fresh CA (ca.crt) and a server certificate for
// 127.0.0.1 and localhost signed by it (server.crt, server.key) into dir;
// with client, also a client certificate in dir/certs.d.
func makeCerts(dir string, client bool) (certFiles, error) {
	var out certFiles
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return out, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ferry test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return out, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvDER, srvKey, err := issue(ca, caKey, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	})
	if err != nil {
		return out, err
	}
	out.ca, out.cert, out.key = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := writePEMs(map[string]*pem.Block{
		out.ca:   {Type: "CERTIFICATE", Bytes: caDER},
		out.cert: {Type: "CERTIFICATE", Bytes: srvDER},
	}); err != nil {
		return out, err
	}
	if err := writeKey(out.key, srvKey); err != nil {
		return out, err
	}
	out.clientDir = filepath.Join(dir, "certs.d")
	if err := os.MkdirAll(out.clientDir, 0o755); err != nil {
		return out, err
	}
	if err := writePEMs(map[string]*pem.Block{filepath.Join(out.clientDir, "ca.crt"): {Type: "CERTIFICATE", Bytes: caDER}}); err != nil {
		return out, err
	}
	if !client {
		return out, nil
	}
	cliDER, cliKey, err := issue(ca, caKey, &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "ferry test client"},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return out, err
	}
	if err := writePEMs(map[string]*pem.Block{filepath.Join(out.clientDir, "client.cert"): {Type: "CERTIFICATE", Bytes: cliDER}}); err != nil {
		return out, err
	}
	return out, writeKey(filepath.Join(out.clientDir, "client.key"), cliKey)
}

// issue makes a key and a day-long certificate for it from tmpl (subject,
// serial, usage, names), signed by the CA.
func issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	return der, key, err
}

func writePEMs(files map[string]*pem.Block) error {
	for path, block := range files {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEMs(map[string]*pem.Block{path: {Type: "EC PRIVATE KEY", Bytes: der}})
}
