package registry

import (
	"bytes"
	"errors"
	"testing"

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
