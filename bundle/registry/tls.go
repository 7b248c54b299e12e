package registry

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tlsConfig builds the TLS settings of one side: the system's CAs plus
// CAFile and the *.crt files of CertDir, a client certificate from CertDir,
// and, only when asked, no verification at all.
func tlsConfig(opts Options) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: opts.InsecureSkipTLSVerify}
	var pems []string
	if opts.CAFile != "" {
		pems = append(pems, opts.CAFile)
	}
	if opts.CertDir != "" {
		entries, err := os.ReadDir(opts.CertDir)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate directory: %v", ErrInvalidOption, err)
		}
		for _, e := range entries {
			name := e.Name()
			path := filepath.Join(opts.CertDir, name)
			switch {
			case strings.HasSuffix(name, ".crt"):
				pems = append(pems, path)
			case strings.HasSuffix(name, ".cert"):
				key := strings.TrimSuffix(path, ".cert") + ".key"
				pair, err := tls.LoadX509KeyPair(path, key)
				if err != nil {
					return nil, fmt.Errorf("%w: client certificate %s with key %s: %v", ErrInvalidOption, path, key, err)
				}
				conf.Certificates = append(conf.Certificates, pair)
			case strings.HasSuffix(name, ".key"):
				if _, err := os.Stat(strings.TrimSuffix(path, ".key") + ".cert"); err != nil {
					return nil, fmt.Errorf("%w: %s has no matching .cert file", ErrInvalidOption, path)
				}
			}
		}
	}
	if len(pems) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, p := range pems {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("%w: reading CA file: %v", ErrInvalidOption, err)
			}
			if !pool.AppendCertsFromPEM(data) {
				return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrInvalidOption, p)
			}
		}
		conf.RootCAs = pool
	}
	return conf, nil
}
