package seal

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"errors"
	"testing"
)

// TestRecipient: the key pair derived from a routers' key is the same for
// every router holding it and differs for another key; a value sealed to
// the public key opens with the private one for the same info only, and
// holds neither the plain text nor the routers' key.
func TestRecipient(t *testing.T) {
	o, err := PrivateFromKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := RecipientFromKey(testKey)
	if !again.Equal(o.Recipient()) || again.Fingerprint() != o.Recipient().Fingerprint() {
		t.Fatal("two derivations from one key differ")
	}
	other, _ := PrivateFromKey(bytes.Repeat([]byte{8}, KeySize))
	if other.Recipient().Equal(o.Recipient()) || other.Recipient().Fingerprint() == o.Recipient().Fingerprint() {
		t.Fatal("two keys derive one recipient")
	}
	// The pair is not the routers' key fed straight to DeriveKeyPair.
	direct, _ := hpke.DHKEM(ecdh.X25519()).DeriveKeyPair(testKey)
	if bytes.Equal(direct.PublicKey().Bytes(), o.Recipient().Bytes()) {
		t.Fatal("the recipient is derived from the routers' key without HKDF")
	}
	if _, err := PrivateFromKey([]byte("short")); err == nil {
		t.Error("PrivateFromKey with a short key: want an error")
	}

	// Published and read back.
	pub, err := ParseRecipient(KEMID, KDFID, AEADID, o.Recipient().Bytes())
	if err != nil || !pub.Equal(o.Recipient()) {
		t.Fatalf("ParseRecipient = %v, want the recipient", err)
	}
	for _, bad := range []struct {
		name             string
		kem, kdf, aeadID uint16
		pub              []byte
	}{
		{"other KEM", 0x0010, KDFID, AEADID, pub.Bytes()},
		{"other AEAD", KEMID, KDFID, 0x0001, pub.Bytes()},
		{"short key", KEMID, KDFID, AEADID, pub.Bytes()[:31]},
	} {
		if _, err := ParseRecipient(bad.kem, bad.kdf, bad.aeadID, bad.pub); err == nil {
			t.Errorf("ParseRecipient %s: want an error", bad.name)
		}
	}

	plain := []byte("-----BEGIN PRIVATE KEY-----")
	sealed, err := pub.Seal("berth/v1/certs/a.example.com", plain)
	if err != nil {
		t.Fatal(err)
	}
	if sealed[0] != 2 || bytes.Contains(sealed, plain) || bytes.Contains(sealed, testKey[:8]) {
		t.Fatalf("sealed %x: want version 2 and neither the plain text nor the key", sealed)
	}
	if again, _ := pub.Seal("berth/v1/certs/a.example.com", plain); bytes.Equal(again, sealed) {
		t.Error("two seals of one value are equal")
	}
	if got, err := o.Open("berth/v1/certs/a.example.com", sealed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v, want the plain text", got, err)
	}
	damaged := bytes.Clone(sealed)
	damaged[len(damaged)-1] ^= 1
	sym, _ := New(testKey)
	for _, tc := range []struct {
		name   string
		o      *Opener
		info   string
		sealed []byte
	}{
		{"other host", o, "berth/v1/certs/b.example.com", sealed},
		{"other key", other, "berth/v1/certs/a.example.com", sealed},
		{"damaged", o, "berth/v1/certs/a.example.com", damaged},
		{"short", o, "berth/v1/certs/a.example.com", sealed[:10]},
		{"empty", o, "berth/v1/certs/a.example.com", nil},
		{"symmetric format", o, "berth/v1/certs/a.example.com", sym.Seal("berth/v1/certs/a.example.com", plain)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := tc.o.Open(tc.info, tc.sealed); !errors.Is(err, ErrOpen) || got != nil {
				t.Errorf("Open = %q, %v, want ErrOpen", got, err)
			}
		})
	}
	if got, err := sym.Open("berth/v1/certs/a.example.com", sealed); !errors.Is(err, ErrOpen) || got != nil {
		t.Errorf("the symmetric Open of an HPKE value = %q, %v, want ErrOpen", got, err)
	}
}
