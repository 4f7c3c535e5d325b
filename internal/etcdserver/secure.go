package etcdserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/pki"
)

// SecureUsers are the client certificates StartSecure issues: one per
// berth role, and root.
var SecureUsers = []string{etcdauth.RootUser, etcdauth.Operator, etcdauth.Agent, etcdauth.Reader, etcdauth.DNS}

// PKI names the files of a secure etcd: the CA certificate and each user's
// client certificate and key (pki.CA.Paths).
type PKI struct {
	CA *pki.CA
}

// CACert is the CA certificate's path.
func (p PKI) CACert() string { return filepath.Join(p.CA.Dir, pki.CACertFile) }

// Client returns the files of user's client certificate.
func (p PKI) Client(user string) pki.Issued { return p.CA.Paths(user) }

// ClientConfig is a client configuration for endpoints acting as user.
func (p PKI) ClientConfig(user string, endpoints ...string) (clientv3.Config, error) {
	f := p.Client(user)
	t, err := pki.ClientTLS(p.CACert(), f.Cert, f.Key)
	if err != nil {
		return clientv3.Config{}, err
	}
	return clientv3.Config{Endpoints: endpoints, TLS: t, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}, nil
}

// StartSecure starts a single-member etcd with its data in dir that
// serves clients over TLS on 127.0.0.1:clientPort and requires a client
// certificate (--client-cert-auth), with etcd auth on: berth's roles
// (etcdauth.Roles of root) and a user per role and root, each
// authenticated by its certificate's CN. A throwaway CA in pkiDir (created
// on the first start, kept for the next) issues the server and client
// certificates. What auth setup did is printed to out.
func StartSecure(dir, pkiDir string, clientPort int, root string, out io.Writer) (*Server, PKI, error) {
	ca, err := pki.Init(pkiDir, "berth up CA")
	if err != nil && !errors.Is(err, pki.ErrExists) {
		return nil, PKI{}, err
	}
	p := PKI{CA: ca}
	srv, err := ca.Issue(pki.Request{Name: "etcd-server", Role: pki.RoleServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNS: []string{"localhost"}})
	if err != nil {
		return nil, p, err
	}
	for _, u := range SecureUsers {
		if _, err := os.Stat(p.Client(u).Key); err == nil {
			continue
		}
		if _, err := ca.Issue(pki.Request{Name: u, Role: pki.RoleClient}); err != nil {
			return nil, p, err
		}
	}
	cfg, err := Config(dir, url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", clientPort)})
	if err != nil {
		return nil, p, err
	}
	cfg.ClientTLSInfo = transport.TLSInfo{CertFile: srv.Cert, KeyFile: srv.Key, TrustedCAFile: p.CACert(), ClientCertAuth: true}
	s, err := StartConfig(cfg)
	if err != nil {
		return nil, p, err
	}
	if err := applyAuth(s, p, root, out); err != nil {
		s.Close()
		return nil, p, err
	}
	return s, p, nil
}

// applyAuth sets up berth's roles as root.
func applyAuth(s *Server, p PKI, root string, out io.Writer) error {
	cfg, err := p.ClientConfig(etcdauth.RootUser, s.Endpoint)
	if err != nil {
		return err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := etcdauth.Apply(ctx, cli, etcdauth.Roles(root), out); err != nil {
		return fmt.Errorf("etcd auth: %w", err)
	}
	return nil
}
