package etcdauth_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/acmestore"
	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/seal"
)

// TestDNS: dnsd's user follows the registry through the watch cache over
// TLS and can write nothing: not the access records, statuses or ACME
// storage the routers' user writes, not the certificate recipient the
// operators seal certificate keys to; and it cannot read sealed secrets.
func TestDNS(t *testing.T) {
	op, d, k, as := followsRegistry(t, etcdauth.DNS)
	log, _ := test.NewNullLogger()

	// What a router may write, dnsd may not.
	access, _ := k.Access("shop", "dnsd-1")
	_, err := d.Put(ctx(t), access, `{"last":1}`)
	mustDeny(t, "put "+access, err)
	_, err = registry.Update(ctx(t), d, k, "shop", func(cur *registry.Status) (registry.Status, bool) {
		return registry.Status{Current: registry.StatusStarting, Expected: registry.StatusStarted}, true
	})
	mustDeny(t, "wake (status transition)", err)
	store, err := acmestore.New(d, k.ACMEPrefix(), bytes.Repeat([]byte{7}, acmestore.KeySize), 5*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	mustDeny(t, "acme store", store.Store(ctx(t), "certificates/ca/shop.example.com/shop.example.com.crt", []byte("pem")))
	lctx, cancel := context.WithTimeout(ctx(t), 3*time.Second)
	defer cancel()
	mustDeny(t, "acme lock", store.Lock(lctx, "issue_cert_shop.example.com"))

	// The certificate recipient: a router publishes it; dnsd can neither
	// publish one where there is none nor replace the routers'.
	own, _ := seal.PrivateFromKey(bytes.Repeat([]byte{2}, seal.KeySize))
	_, _, err = registry.PublishCertRecipient(ctx(t), d, k, own.Recipient())
	mustDeny(t, "publish the certificate recipient", err)
	routers, _ := seal.PrivateFromKey(bytes.Repeat([]byte{1}, seal.KeySize))
	r := as(etcdauth.Reader)
	if created, _, err := registry.PublishCertRecipient(ctx(t), r, k, routers.Recipient()); err != nil || !created {
		t.Fatalf("publish as berth-reader (a router): created=%v, %v", created, err)
	}
	_, err = d.Put(ctx(t), k.CertRecipient(), "{}")
	mustDeny(t, "put "+k.CertRecipient(), err)
	_, err = d.Delete(ctx(t), k.CertRecipient())
	mustDeny(t, "delete "+k.CertRecipient(), err)
	if got, err := registry.GetCertRecipient(ctx(t), d, k); err != nil || !got.Equal(routers.Recipient()) {
		t.Errorf("the recipient as berth-dns reads it: %v, %v; want the routers'", got, err)
	}

	appKey, _ := k.App("x")
	_, err = d.Put(ctx(t), appKey, "{}")
	mustDeny(t, "put "+appKey, err)
	_, err = d.Put(ctx(t), k.Root()+"/schema", "1")
	mustDeny(t, "put the schema version", err)
	_, err = d.Delete(ctx(t), k.Prefix(), clientv3.WithPrefix())
	mustDeny(t, "delete everything", err)

	// Sealed secrets are out of dnsd's reach, even encrypted.
	sealedKey := putSecret(t, op, k)
	_, err = d.Get(ctx(t), sealedKey)
	mustDeny(t, "get "+sealedKey, err)
	_, err = d.Get(ctx(t), k.SecretsRoot(), clientv3.WithPrefix())
	mustDeny(t, "list "+k.SecretsRoot(), err)
	_, err = d.Get(ctx(t), k.Root()+"/", clientv3.WithPrefix())
	mustDeny(t, "list "+k.Root()+"/", err)
}
