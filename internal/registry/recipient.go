package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/seal"
)

// ErrNoCertRecipient is returned (wrapped) by GetCertRecipient when no
// router has published its recipient.
var ErrNoCertRecipient = errors.New("no router has published its certificate recipient")

// ErrBadCertRecipient is returned (wrapped) by GetCertRecipient for a
// published value that does not read as a CertRecipient of this suite.
var ErrBadCertRecipient = errors.New("the published certificate recipient does not read")

// ErrCertRecipientDiffers is returned (wrapped) by PublishCertRecipient
// when another recipient (or an unreadable value) is published: the
// routers disagree on their key.
var ErrCertRecipientDiffers = errors.New("another certificate recipient is published")

// CertRecipient is /berth/v1/acme/cert-recipient: the routers' HPKE
// public key (seal.Recipient, derived from their key) and its suite's
// RFC 9180 ids, written by the first router started with the routers' key
// and never overwritten by a router. berth cert put seals to it.
type CertRecipient struct {
	KEM       uint16 `json:"kem"`       // 0x20 (32): DHKEM(X25519, HKDF-SHA256)
	KDF       uint16 `json:"kdf"`       // 1: HKDF-SHA256
	AEAD      uint16 `json:"aead"`      // 2: AES-256-GCM
	PublicKey []byte `json:"publicKey"` // base64 in JSON, 32 bytes
}

// certRecipientRecord is r as published.
func certRecipientRecord(r *seal.Recipient) []byte {
	b, _ := json.Marshal(CertRecipient{KEM: seal.KEMID, KDF: seal.KDFID, AEAD: seal.AEADID, PublicKey: r.Bytes()})
	return b
}

// parseCertRecipient reads a published record; an error wraps
// ErrBadCertRecipient.
func parseCertRecipient(key string, b []byte) (*seal.Recipient, error) {
	var rec CertRecipient
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadCertRecipient, key, err)
	}
	r, err := seal.ParseRecipient(rec.KEM, rec.KDF, rec.AEAD, rec.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadCertRecipient, key, err)
	}
	return r, nil
}

// GetCertRecipient reads the published recipient; an error wraps
// ErrNoCertRecipient when there is none.
func GetCertRecipient(ctx context.Context, kv clientv3.KV, k Keys) (*seal.Recipient, error) {
	key := k.CertRecipient()
	resp, err := kv.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%w at %s", ErrNoCertRecipient, key)
	}
	return parseCertRecipient(key, resp.Kvs[0].Value)
}

// PublishCertRecipient publishes r unless a recipient is there already
// (a transaction on the key's absence): it reports whether it wrote, and
// the revision of the read or write. An equal recipient is left alone; a
// different or unreadable one too, with an error wrapping
// ErrCertRecipientDiffers naming both fingerprints.
func PublishCertRecipient(ctx context.Context, kv clientv3.KV, k Keys, r *seal.Recipient) (created bool, rev int64, err error) {
	key := k.CertRecipient()
	resp, err := kv.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(certRecipientRecord(r)))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return false, 0, err
	}
	rev = resp.Header.Revision
	if resp.Succeeded {
		return true, rev, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return false, rev, fmt.Errorf("%s: present to the compare, absent to the get", key)
	}
	pub, err := parseCertRecipient(key, kvs[0].Value)
	if err != nil {
		return false, rev, fmt.Errorf("%w (%v), this router's is %s", ErrCertRecipientDiffers, err, r.Fingerprint())
	}
	if !pub.Equal(r) {
		return false, rev, fmt.Errorf("%w at %s: %s, this router's is %s", ErrCertRecipientDiffers, key, pub.Fingerprint(), r.Fingerprint())
	}
	return false, rev, nil
}
