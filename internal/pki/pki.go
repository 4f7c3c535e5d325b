package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"
)

// File names of the CA in its directory.
const (
	CACertFile = "ca.pem"     // the CA certificate: copied to every node and client
	CAKeyFile  = "ca-key.pem" // the CA key (0600): never leaves the operator's machine
)

// Validity defaults.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 365 * 24 * time.Hour
)

// Role is what a certificate is for.
type Role string

// The roles of issued certificates.
const (
	RoleServer Role = "server" // an etcd member's client port (server auth; client auth too, for etcd's own gateway)
	RolePeer   Role = "peer"   // an etcd member's peer port (server and client auth)
	RoleClient Role = "client" // a client; its CN is the etcd user name
)

// Roles lists the valid roles.
var Roles = []Role{RoleServer, RolePeer, RoleClient}

// ErrExists is returned by Init when the directory already holds a CA.
var ErrExists = errors.New("a CA exists already")

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// CA is a loaded certificate authority.
type CA struct {
	Dir  string
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Init creates a CA in dir (created 0700 if missing): ca.pem and ca-key.pem
// (0600). It returns ErrExists, with the CA loaded, if dir holds one.
func Init(dir, name string) (*CA, error) {
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		ca, err := Load(dir)
		if err != nil {
			return nil, err
		}
		return ca, ErrExists
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name, Organization: []string{"berth"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(CAValidity), IsCA: true, BasicConstraintsValid: true,
		MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{Dir: dir, Cert: cert, Key: key}
	if err := writeKey(filepath.Join(dir, CAKeyFile), key); err != nil {
		return nil, err
	}
	return ca, writePEM(filepath.Join(dir, CACertFile), "CERTIFICATE", der, 0o644)
}

// Load reads the CA of dir.
func Load(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("read CA: %w (berth pki init %s creates one)", err, dir)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("CA in %s: no PEM block", dir)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", CACertFile, err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", CAKeyFile, err)
	}
	return &CA{Dir: dir, Cert: cert, Key: key}, nil
}

// Request describes a certificate to issue.
type Request struct {
	Name     string        // CN and file name; for RoleClient the etcd user name
	Role     Role          // server, peer or client
	IPs      []net.IP      // IP SANs (server and peer)
	DNS      []string      // DNS SANs (server and peer)
	Validity time.Duration // default CertValidity
}

// Issued names the files Issue wrote.
type Issued struct {
	Cert, Key string // <dir>/<name>.pem and <dir>/<name>-key.pem (0600)
}

// Paths returns where Issue writes the certificate and key of name.
func (ca *CA) Paths(name string) Issued {
	return Issued{Cert: filepath.Join(ca.Dir, name+".pem"), Key: filepath.Join(ca.Dir, name+"-key.pem")}
}

// Issue signs a new key pair for r and writes it next to the CA,
// overwriting an earlier certificate of the same name.
func (ca *CA) Issue(r Request) (Issued, error) {
	if !validName.MatchString(r.Name) || r.Name == "ca" {
		return Issued{}, fmt.Errorf("certificate name %q: letters, digits, '.', '_', '-', at most 63, not \"ca\"", r.Name)
	}
	if !slices.Contains(Roles, r.Role) {
		return Issued{}, fmt.Errorf("role %q: want server, peer or client", r.Role)
	}
	if r.Validity == 0 {
		r.Validity = CertValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issued{}, err
	}
	serial, err := newSerial()
	if err != nil {
		return Issued{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: r.Name, OrganizationalUnit: []string{string(r.Role)}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(r.Validity), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, IPAddresses: r.IPs, DNSNames: r.DNS}
	if r.Role == RoleClient {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return Issued{}, err
	}
	out := ca.Paths(r.Name)
	if err := writeKey(out.Key, key); err != nil {
		return Issued{}, err
	}
	return out, writePEM(out.Cert, "CERTIFICATE", der, 0o644)
}

// CommonName returns the CN of the first certificate in the PEM file path.
func CommonName(path string) (string, error) {
	cert, err := readCert(path)
	if err != nil {
		return "", err
	}
	return cert.Subject.CommonName, nil
}

// Verify checks that the PEM certificate in path was issued by the CA for
// usage, and returns it.
func (ca *CA) Verify(path string, usage x509.ExtKeyUsage) (*x509.Certificate, error) {
	cert, err := readCert(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}})
	return cert, err
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	return x509.ParseCertificate(blk.Bytes)
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	b, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", b, 0o600)
}

// writePEM writes atomically (temporary file, rename) with mode perm.
func writePEM(path, typ string, der []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := pem.Encode(tmp, &pem.Block{Type: typ, Bytes: der}); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ClientTLS is the TLS configuration of a client that trusts the CA in
// caFile (empty: the system's roots) and, with certFile, presents that
// certificate and keyFile.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA certificate: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", caFile)
		}
	}
	if certFile != "" || keyFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	return t, nil
}
