package router

import (
	"crypto/tls"
	"strings"
)

// GetCertificate picks the certificate for a TLS handshake by SNI from the
// certificates in etcd (/berth/v1/certs/<host>, shared by every router):
// the exact host, then the wildcard one level up ("*.example.com" for
// "a.example.com", as TLS wildcards match one label). It returns nil when
// etcd has none, so tls.Config.Certificates (from files) apply.
func (r *Router) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := r.src.Snapshot().Certs
	if len(certs) == 0 || hello.ServerName == "" {
		return nil, nil
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if c := certs[name]; c != nil {
		return c, nil
	}
	if _, rest, ok := strings.Cut(name, "."); ok {
		if c := certs["*."+rest]; c != nil {
			return c, nil
		}
	}
	return nil, nil
}
