package etcdtest

import (
	"io"
	"path/filepath"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdserver"
)

// Secure starts an etcd for one test as berth up --secure runs it: TLS with
// client certificates and etcd auth with berth's roles under /berth. It
// returns the server and its PKI (SecureClient connects as a user).
func Secure(t testing.TB) (*etcdserver.Server, etcdserver.PKI) {
	t.Helper()
	dir := t.TempDir()
	s, p, err := etcdserver.StartSecure(filepath.Join(dir, "data"), filepath.Join(dir, "pki"), 0, "/berth", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, p
}

// SecureClient connects to s as user (its client certificate) and closes
// the client when the test ends.
func SecureClient(t testing.TB, s *etcdserver.Server, p etcdserver.PKI, user string) *clientv3.Client {
	t.Helper()
	cfg, err := p.ClientConfig(user, s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
