package router

import (
	"crypto/tls"
	"errors"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/seal"
)

// GetCertificate picks the certificate for a TLS handshake by SNI: first
// from the certificates in etcd (/berth/v1/certs/<host>, shared by every
// router, their private keys sealed to the routers' HPKE recipient and
// opened with the private key derived from Config.RouterKey): the exact
// host, then the wildcard one level up ("*.example.com" for
// "a.example.com", as TLS wildcards match one label); then, with
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

// etcdCertificate is the certificate in etcd for serverName: the exact
// host's, else the wildcard's one level up. A record whose key does not
// open is passed over.
func (r *Router) etcdCertificate(serverName string) *tls.Certificate {
	certs := r.src.Snapshot().Certs
	if len(certs) == 0 || serverName == "" {
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(serverName, "."))
	if rec := certs[name]; rec != nil {
		if c := r.certs.get(rec); c != nil {
			return c
		}
	}
	if _, rest, ok := strings.Cut(name, "."); ok {
		if rec := certs["*."+rest]; rec != nil {
			return r.certs.get(rec)
		}
	}
	return nil
}

// certCache keeps the certificates in etcd opened, one per record value
// (the snapshot's *StoredCert, replaced on every change), so a handshake
// does not decrypt; a record that does not open is remembered too, and
// logged and counted once.
type certCache struct {
	opener *seal.Opener // nil: no router key
	log    logrus.FieldLogger
	m      *metrics

	mu     sync.Mutex
	opened map[string]openedCert // host → its record value, opened
}

type openedCert struct {
	rec  *registry.StoredCert
	cert *tls.Certificate // nil: did not open
}

func newCertCache(key []byte, m *metrics, log logrus.FieldLogger) (*certCache, error) {
	c := &certCache{log: log, m: m, opened: map[string]openedCert{}}
	if key != nil {
		var err error
		if c.opener, err = seal.PrivateFromKey(key); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// get returns rec opened, or nil when it does not open.
func (c *certCache) get(rec *registry.StoredCert) *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, ok := c.opened[rec.Host]; ok && o.rec == rec {
		return o.cert
	}
	return c.open(rec)
}

// sync opens the records of certs not opened yet and forgets those gone,
// after a registry change: warnings come when a record arrives, not at
// its first handshake.
func (c *certCache) sync(certs map[string]*registry.StoredCert) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for host, o := range c.opened {
		if certs[host] != o.rec {
			delete(c.opened, host)
		}
	}
	nClear := 0
	for host, rec := range certs {
		if _, ok := c.opened[host]; !ok {
			c.open(rec)
		}
		if o := c.opened[host]; o.cert != nil && rec.ClearKey() {
			nClear++
		}
	}
	c.m.etcdCertsClear.Set(float64(nClear))
}

// open opens rec and remembers it; c.mu is held.
func (c *certCache) open(rec *registry.StoredCert) *tls.Certificate {
	cert, err := rec.Open(c.opener)
	c.opened[rec.Host] = openedCert{rec: rec, cert: cert}
	log := c.log.WithField("host", rec.Host)
	switch {
	case errors.Is(err, registry.ErrNoRouterKey):
		c.m.etcdCertsSkipped.WithLabelValues("no-router-key").Inc()
		log.Warn("certificate in etcd not served: its private key is sealed and this router has no --router-key-file")
	case errors.Is(err, seal.ErrOpen):
		c.m.etcdCertsSkipped.WithLabelValues("does-not-open").Inc()
		log.WithError(err).Warn("certificate in etcd not served: its private key does not open with this router's key " +
			"(sealed to another recipient, or for another host); store it again with berth cert put")
	case err != nil:
		c.m.etcdCertsSkipped.WithLabelValues("invalid").Inc()
		log.WithError(err).Warn("certificate in etcd not served")
	case rec.ClearKey():
		log.Warn("certificate in etcd has its private key stored in clear: run berth cert put again to seal it")
	}
	return cert
}
