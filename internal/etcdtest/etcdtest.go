// Package etcdtest has the test helpers around a real etcd server running
// in-process: one per test (New), a client closed with the test (Client), a
// member serving clients over TLS (StartTLS), one as berth up --secure runs
// it, with client certificates and berth's roles (Secure, SecureClient), a
// cluster of several members (StartCluster). The embedded etcd itself, which berth up runs too, is
// internal/etcdserver.
package etcdtest

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/berthproject/berth/internal/etcdserver"
)

// New starts an embedded etcd for one test and returns it with a client;
// both are closed when the test ends.
func New(t testing.TB) (*etcdserver.Server, *clientv3.Client) {
	t.Helper()
	s, err := etcdserver.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, Client(t, s.Endpoint)
}

// Client connects to endpoint and closes the client when the test ends.
func Client(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
