package registry

import (
	"bytes"
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/seal"
)

// TestCertRecipient: the first router publishes its recipient; one with
// the same key leaves it; one with another key, or a value that does not
// read, is refused and nothing is overwritten. berth cert put reads it
// back, and says when there is none.
func TestCertRecipient(t *testing.T) {
	_, cli := etcdtest.New(t)
	ctx := t.Context()
	k, _ := NewKeys("")
	mine, _ := seal.RecipientFromKey(bytes.Repeat([]byte{1}, seal.KeySize))
	theirs, _ := seal.RecipientFromKey(bytes.Repeat([]byte{2}, seal.KeySize))

	if _, err := GetCertRecipient(ctx, cli, k); !errors.Is(err, ErrNoCertRecipient) {
		t.Fatalf("GetCertRecipient before any router: %v, want ErrNoCertRecipient", err)
	}
	if created, _, err := PublishCertRecipient(ctx, cli, k, mine); err != nil || !created {
		t.Fatalf("first publish: created=%v, %v; want it written", created, err)
	}
	stored, _ := cli.Get(ctx, "/berth/v1/acme/cert-recipient")
	if len(stored.Kvs) != 1 {
		t.Fatal("nothing at /berth/v1/acme/cert-recipient")
	}
	if created, _, err := PublishCertRecipient(ctx, cli, k, mine); err != nil || created {
		t.Errorf("publish of the same recipient: created=%v, %v; want it left alone", created, err)
	}
	_, _, err := PublishCertRecipient(ctx, cli, k, theirs)
	if !errors.Is(err, ErrCertRecipientDiffers) || !bytes.Contains([]byte(err.Error()), []byte(mine.Fingerprint())) {
		t.Errorf("publish of another recipient: %v, want ErrCertRecipientDiffers naming the published one", err)
	}
	if got, err := GetCertRecipient(ctx, cli, k); err != nil || !got.Equal(mine) {
		t.Fatalf("GetCertRecipient = %v, %v; want the first router's", got, err)
	}
	after, _ := cli.Get(ctx, k.CertRecipient())
	if after.Kvs[0].ModRevision != stored.Kvs[0].ModRevision {
		t.Error("the published recipient was rewritten")
	}

	for _, bad := range []string{`nope`, `{"kem":16,"kdf":1,"aead":2,"publicKey":"AAAA"}`, `{"kem":32,"kdf":1,"aead":2,"publicKey":"AAAA"}`} {
		cli.Put(ctx, k.CertRecipient(), bad)
		if _, err := GetCertRecipient(ctx, cli, k); !errors.Is(err, ErrBadCertRecipient) {
			t.Errorf("GetCertRecipient of %s: %v, want ErrBadCertRecipient", bad, err)
		}
		if _, _, err := PublishCertRecipient(ctx, cli, k, mine); !errors.Is(err, ErrCertRecipientDiffers) {
			t.Errorf("publish over %s: %v, want ErrCertRecipientDiffers", bad, err)
		}
		if got, _ := cli.Get(ctx, k.CertRecipient()); string(got.Kvs[0].Value) != bad {
			t.Errorf("%s was overwritten", bad)
		}
	}
}

// TestCertRecipientWithEtcdRoles: under berth's etcd roles a router
// (berth-reader) publishes the recipient, an operator seals to it and
// stores a certificate without any router key; the agent may do neither.
func TestCertRecipientWithEtcdRoles(t *testing.T) {
	s, p := etcdtest.Secure(t)
	op := etcdtest.SecureClient(t, s, p, etcdauth.Operator)
	agent := etcdtest.SecureClient(t, s, p, etcdauth.Agent)
	reader := etcdtest.SecureClient(t, s, p, etcdauth.Reader)
	k := keys(t)
	ctx := t.Context()
	routers, _ := seal.PrivateFromKey(bytes.Repeat([]byte{1}, seal.KeySize))

	if _, _, err := PublishCertRecipient(ctx, agent, k, routers.Recipient()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("publish as berth-agent: %v, want permission denied", err)
	}
	if created, _, err := PublishCertRecipient(ctx, reader, k, routers.Recipient()); err != nil || !created {
		t.Fatalf("publish as berth-reader (a router): created=%v, %v", created, err)
	}
	rcpt, err := GetCertRecipient(ctx, op, k)
	if err != nil {
		t.Fatalf("read as berth-operator: %v", err)
	}
	certPEM, keyPEM, leaf, err := etcdtest.SelfSigned("shop.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := PutCert(ctx, agent, k, "shop.example.com", certPEM, keyPEM, rcpt); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("cert put as berth-agent: %v, want permission denied", err)
	}
	if err := PutCert(ctx, op, k, "shop.example.com", certPEM, keyPEM, rcpt); err != nil {
		t.Fatalf("cert put as berth-operator: %v", err)
	}
	snap, err := NewCache(reader, reader, CacheConfig{Keys: k}, nullLog()).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := snap.Certs["shop.example.com"].Open(routers); err != nil || !bytes.Equal(c.Certificate[0], leaf.Raw) {
		t.Errorf("the router opens the stored key: %v", err)
	}
}
