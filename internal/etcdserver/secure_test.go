package etcdserver

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdauth"
)

// TestStartSecureUsers: StartSecure issues a certificate for every berth
// role; a PKI directory made before berth-dns existed gets its
// certificate at the next start, and berth-dns reads but cannot write.
func TestStartSecureUsers(t *testing.T) {
	dir := t.TempDir()
	data, pkiDir := filepath.Join(dir, "data"), filepath.Join(dir, "pki")
	s, p, err := StartSecure(data, pkiDir, 0, "/berth", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range etcdauth.Roles("/berth") {
		if _, err := os.Stat(p.Client(r.Name).Key); err != nil {
			t.Errorf("role %s: no client certificate: %v", r.Name, err)
		}
	}
	s.Close()
	for _, f := range []string{p.Client(etcdauth.DNS).Cert, p.Client(etcdauth.DNS).Key} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	s, p, err = StartSecure(data, pkiDir, 0, "/berth", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg, err := p.ClientConfig(etcdauth.DNS, s.Endpoint)
	if err != nil {
		t.Fatalf("berth-dns's certificate after a restart: %v", err)
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "/berth/v1/", clientv3.WithPrefix()); err != nil {
		t.Errorf("read /berth/v1/ as berth-dns: %v", err)
	}
	if _, err := cli.Put(ctx, "/berth/v1/acme/cert-recipient", "x"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("put the certificate recipient as berth-dns: %v, want permission denied", err)
	}
}
