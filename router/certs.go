package router

import (
	"crypto/tls"
	"strings"
)

// GetCertificate picks the certificate for a TLS handshake by SNI: first
// from the certificates in etcd (/berth/v1/certs/<host>, shared by every
// router): the exact host, then the wildcard one level up ("*.example.com"
// for "a.example.com", as TLS wildcards match one label); then, with
// EnableACME, from the ACME CA (loaded from the shared storage, or issued
// on demand for an exact domain of an app). A TLS-ALPN-01 validation
// handshake goes to ACME first. It returns nil when neither has one, so
// tls.Config.Certificates (from files) apply; with ACME, a name that is
// no app's domain fails the handshake.
func (r *Router) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if r.acme != nil && isALPNChallenge(hello) {
		return r.acme.cfg.GetCertificate(hello)
	}
	if c := r.etcdCertificate(hello.ServerName); c != nil {
		return c, nil
	}
	if r.acme != nil && hello.ServerName != "" {
		return r.acme.cfg.GetCertificate(hello)
	}
	return nil, nil
}

func (r *Router) etcdCertificate(serverName string) *tls.Certificate {
	certs := r.src.Snapshot().Certs
	if len(certs) == 0 || serverName == "" {
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(serverName, "."))
	if c := certs[name]; c != nil {
		return c
	}
	if _, rest, ok := strings.Cut(name, "."); ok {
		return certs["*."+rest]
	}
	return nil
}
