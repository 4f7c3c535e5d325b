package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/berthproject/berth/internal/etcdserver"
	"github.com/berthproject/berth/internal/pki"
)

// TLSFiles are the PEM files of a test PKI.
type TLSFiles struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// WritePKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate (CN berth) into dir, with internal/pki.
func WritePKI(dir string) (TLSFiles, error) {
	ca, err := pki.Init(dir, "berth test CA")
	if err != nil {
		return TLSFiles{}, err
	}
	srv, err := ca.Issue(pki.Request{Name: "server", Role: pki.RoleServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		return TLSFiles{}, err
	}
	cli, err := ca.Issue(pki.Request{Name: "berth", Role: pki.RoleClient})
	return TLSFiles{CA: filepath.Join(dir, pki.CACertFile), ServerCert: srv.Cert, ServerKey: srv.Key, ClientCert: cli.Cert, ClientKey: cli.Key}, err
}

// StartTLS starts a single-member etcd that serves clients over TLS and
// requires a client certificate signed by the test CA.
func StartTLS(dir string, pki TLSFiles) (*etcdserver.Server, error) {
	client, err := etcdserver.FreePort()
	if err != nil {
		return nil, err
	}
	cu := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", client)}
	cfg, err := etcdserver.Config(filepath.Join(dir, "data"), cu)
	if err != nil {
		return nil, err
	}
	cfg.ClientTLSInfo = transport.TLSInfo{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, TrustedCAFile: pki.CA, ClientCertAuth: true}
	s, err := etcdserver.StartConfig(cfg)
	if err != nil {
		return nil, err
	}
	s.Dir = dir
	return s, nil
}

// SelfSigned returns a self-signed certificate and key (PEM) for names,
// and the certificate for a client's trust pool.
func SelfSigned(names ...string) (certPEM, keyPEM []byte, cert *x509.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: names,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, _ = x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), cert, nil
}
