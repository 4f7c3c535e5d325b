package registry

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/berthproject/berth/internal/seal"
)

// ErrNoRouterKey is returned (wrapped) by StoredCert.Open for a sealed
// key when no routers' key (its derived opener) was given.
var ErrNoRouterKey = errors.New("the private key is sealed and there is no router key (--router-key-file)")

// StoredCert is a certificate of certs/<host> as a Snapshot keeps it: the
// public chain, parsed, and the private key as etcd holds it. The registry
// never opens the key (dnsd, the API and the console have no use for it);
// a router does, with Open.
type StoredCert struct {
	Host    string            // the record's host: "a.example.com" or "*.example.com"
	CertPEM []byte            // the chain, leaf first
	Leaf    *x509.Certificate // the chain's first certificate
	// KeySealed is the private key (PEM) sealed to the routers' recipient
	// for Host (SealCertKey); nil for a record written before keys were
	// sealed.
	KeySealed []byte
	// ClearKeyPEM is the private key of a record written before keys were
	// sealed, in clear (set only when KeySealed is nil). Such a record is
	// still served; "berth cert put" again seals it.
	ClearKeyPEM []byte
}

// ClearKey reports whether the record holds its private key in clear.
func (c *StoredCert) ClearKey() bool { return c.KeySealed == nil }

// Open returns the certificate with its private key, opening a sealed key
// with o (seal.PrivateFromKey of the routers' key). An error wraps
// ErrNoRouterKey when the key is sealed and o is nil, seal.ErrOpen when it
// does not open (sealed to another recipient, a sealed key copied from
// another host's record, or the symmetric format of an earlier
// development version, which is not read).
func (c *StoredCert) Open(o *seal.Opener) (*tls.Certificate, error) {
	keyPEM := c.ClearKeyPEM
	if c.KeySealed != nil {
		if o == nil {
			return nil, fmt.Errorf("certificate for %s: %w", c.Host, ErrNoRouterKey)
		}
		var err error
		if keyPEM, err = o.Open(CertKeyInfo(c.Host), c.KeySealed); err != nil {
			return nil, fmt.Errorf("certificate for %s: private key: %w", c.Host, err)
		}
	}
	pair, err := tls.X509KeyPair(c.CertPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate for %s: %w", c.Host, err)
	}
	return &pair, nil
}

// SealCertKey seals the private key of host's certificate to the routers'
// recipient with HPKE, bound to host: moved to another host's record it
// does not open.
func SealCertKey(r *seal.Recipient, host string, keyPEM []byte) ([]byte, error) {
	return r.Seal(CertKeyInfo(host), keyPEM)
}

// CertKeyInfo is the HPKE info of a certificate's sealed key:
// "berth/v1/certs/" and the record's host (as Keys.Cert names it, without
// the root, so it holds under any --etcd-prefix).
func CertKeyInfo(host string) string { return "berth/v1/certs/" + host }

// storedCert checks a certificate record of host and keeps its public
// part: the chain must parse, and the key be there (sealed) or match the
// certificate (in clear).
func storedCert(host string, c *Cert) (*StoredCert, error) {
	b, _ := pem.Decode([]byte(c.Cert))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("cert: no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("cert: %w", err)
	}
	sc := &StoredCert{Host: host, CertPEM: []byte(c.Cert), Leaf: leaf}
	switch {
	case len(c.KeySealed) > 0 && c.Key != "":
		return nil, fmt.Errorf("both key (in clear) and keySealed: store it again with berth cert put")
	case len(c.KeySealed) > 0:
		sc.KeySealed = c.KeySealed
	case c.Key != "":
		if _, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key)); err != nil {
			return nil, err
		}
		sc.ClearKeyPEM = []byte(c.Key)
	default:
		return nil, fmt.Errorf("no keySealed: store it with berth cert put")
	}
	return sc, nil
}
