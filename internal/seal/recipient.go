package seal

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// The HPKE suite (RFC 9180) of the routers' recipient: base mode,
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. Their ids are
// published with the public key (registry.CertRecipient).
const (
	KEMID  uint16 = 0x0020 // DHKEM(X25519, HKDF-SHA256)
	KDFID  uint16 = 0x0001 // HKDF-SHA256
	AEADID uint16 = 0x0002 // AES-256-GCM
)

// recipientInfo is the HKDF info deriving the recipient's input keying
// material from the routers' key: the AES key itself never reaches
// DeriveKeyPair, and the derived pair is worthless for anything else.
const recipientInfo = "berth router cert-put HPKE v1"

// hpkeVersion is the first byte of a value sealed to a Recipient
// (version, the symmetric format, is 1).
const hpkeVersion = 2

var (
	kem  = hpke.DHKEM(ecdh.X25519())
	kdf  = hpke.HKDFSHA256()
	aead = hpke.AES256GCM()
)

// Recipient is the routers' public key for sealing certificate keys
// (berth cert put): anyone may seal to it, only a holder of the routers'
// key opens. It is safe for concurrent use.
type Recipient struct{ pub hpke.PublicKey }

// Opener is the private side of the Recipient derived from the routers'
// key: what a router opens certificate keys with. It is safe for
// concurrent use.
type Opener struct {
	priv hpke.PrivateKey
	rcpt *Recipient
}

// PrivateFromKey derives the routers' HPKE key pair from their key
// (KeySize bytes): ikm = HKDF-SHA256(routerKey, no salt, info "berth
// router cert-put HPKE v1", 32 bytes), then RFC 9180 DeriveKeyPair(ikm)
// of DHKEM(X25519). Every router with the same key derives the same pair,
// so nothing is distributed beyond the routers' key.
func PrivateFromKey(routerKey []byte) (*Opener, error) {
	if len(routerKey) != KeySize {
		return nil, fmt.Errorf("router key: want %d bytes, got %d", KeySize, len(routerKey))
	}
	ikm, err := hkdf.Key(sha256.New, routerKey, nil, recipientInfo, 32)
	if err != nil {
		return nil, err
	}
	priv, err := kem.DeriveKeyPair(ikm)
	if err != nil {
		return nil, err
	}
	return &Opener{priv: priv, rcpt: &Recipient{priv.PublicKey()}}, nil
}

// RecipientFromKey is the public side of PrivateFromKey(routerKey).
func RecipientFromKey(routerKey []byte) (*Recipient, error) {
	o, err := PrivateFromKey(routerKey)
	if err != nil {
		return nil, err
	}
	return o.rcpt, nil
}

// ParseRecipient reads a recipient's public key as Bytes wrote it, for
// the suite given by its ids (which must be this package's).
func ParseRecipient(kemID, kdfID, aeadID uint16, pub []byte) (*Recipient, error) {
	if kemID != KEMID || kdfID != KDFID || aeadID != AEADID {
		return nil, fmt.Errorf("HPKE suite kem=%#04x kdf=%#04x aead=%#04x: want kem=%#04x kdf=%#04x aead=%#04x",
			kemID, kdfID, aeadID, KEMID, KDFID, AEADID)
	}
	pk, err := kem.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("HPKE public key: %w", err)
	}
	return &Recipient{pk}, nil
}

// Recipient returns the public side.
func (o *Opener) Recipient() *Recipient { return o.rcpt }

// Bytes is the public key (32 bytes, X25519).
func (r *Recipient) Bytes() []byte { return r.pub.Bytes() }

// Equal reports whether r and o are the same public key.
func (r *Recipient) Equal(o *Recipient) bool {
	return o != nil && subtle.ConstantTimeCompare(r.Bytes(), o.Bytes()) == 1
}

// Fingerprint is a short name of the public key for messages: "sha256:"
// and the first 8 bytes of its SHA-256, in hex.
func (r *Recipient) Fingerprint() string {
	sum := sha256.Sum256(r.Bytes())
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// Seal returns 2 | the HPKE ciphertext (encapsulated key, then
// AES-256-GCM of plain) sealed to r with info: Open needs the same info.
func (r *Recipient) Seal(info string, plain []byte) ([]byte, error) {
	ct, err := hpke.Seal(r.pub, kdf, aead, []byte(info), plain)
	if err != nil {
		return nil, err
	}
	return append([]byte{hpkeVersion}, ct...), nil
}

// Open reverses Recipient.Seal; an error wraps ErrOpen (sealed to another
// recipient, with another info, or damaged).
func (o *Opener) Open(info string, sealed []byte) ([]byte, error) {
	if len(sealed) < 1 || sealed[0] != hpkeVersion {
		return nil, fmt.Errorf("%w: bad header", ErrOpen)
	}
	plain, err := hpke.Open(o.priv, kdf, aead, []byte(info), sealed[1:])
	if err != nil {
		return nil, fmt.Errorf("%w with this router key", ErrOpen)
	}
	return plain, nil
}
