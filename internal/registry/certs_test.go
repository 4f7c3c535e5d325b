package registry

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/seal"
)

// TestPutCertSealsTheKey: berth cert put's record holds the chain in
// clear and the private key sealed to the routers' recipient (HPKE,
// version 2): neither its PEM nor its bytes are in etcd. The snapshot
// keeps the public part; the key opens with the private side derived from
// the routers' key, for its host only.
func TestPutCertSealsTheKey(t *testing.T) {
	_, cli := etcdtest.New(t)
	ctx := t.Context()
	k, _ := NewKeys("")
	s, _ := seal.PrivateFromKey(bytes.Repeat([]byte{1}, seal.KeySize))
	other, _ := seal.PrivateFromKey(bytes.Repeat([]byte{2}, seal.KeySize))
	certPEM, keyPEM, leaf, err := etcdtest.SelfSigned("Web.Example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := PutCert(ctx, cli, k, "web.example.com", certPEM, keyPEM, nil); err == nil || !strings.Contains(err.Error(), "routers' recipient") {
		t.Errorf("without a recipient: %v, want an error naming the routers' recipient", err)
	}
	_, otherKey, _, _ := etcdtest.SelfSigned("web.example.com")
	if err := PutCert(ctx, cli, k, "web.example.com", certPEM, otherKey, s.Recipient()); err == nil {
		t.Error("a key that does not match the certificate was stored")
	}
	if err := PutCert(ctx, cli, k, "Web.Example.com", certPEM, keyPEM, s.Recipient()); err != nil {
		t.Fatal(err)
	}
	key, _ := k.Cert("web.example.com")
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %v", key, err)
	}
	raw := resp.Kvs[0].Value
	der, _ := pem.Decode(keyPEM)
	var rec map[string]any
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	sealed, _ := base64.StdEncoding.DecodeString(rec["keySealed"].(string))
	for _, leak := range [][]byte{[]byte("PRIVATE KEY"), der.Bytes, der.Bytes[len(der.Bytes)-32:], []byte(base64.StdEncoding.EncodeToString(der.Bytes)[8:40])} {
		if bytes.Contains(raw, leak) || bytes.Contains(sealed, leak) {
			t.Fatalf("the etcd value holds key material (%.20q): %s", leak, raw)
		}
	}
	if _, ok := rec["key"]; ok || rec["cert"] != string(certPEM) || len(sealed) == 0 || sealed[0] != 2 {
		t.Fatalf("record %s, want cert and keySealed only", raw)
	}

	log, _ := test.NewNullLogger()
	snap, err := NewCache(cli, cli, CacheConfig{Keys: k}, log).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sc := snap.Certs["web.example.com"]
	if sc == nil || !sc.Leaf.Equal(leaf) || sc.ClearKey() || sc.ClearKeyPEM != nil {
		t.Fatalf("snapshot %+v, want the leaf and a sealed key", sc)
	}
	if c, err := sc.Open(s); err != nil || !bytes.Equal(c.Certificate[0], leaf.Raw) {
		t.Errorf("Open with the routers' key: %v", err)
	}
	if _, err := sc.Open(nil); !errors.Is(err, ErrNoRouterKey) {
		t.Errorf("Open without a key: %v, want ErrNoRouterKey", err)
	}
	if _, err := sc.Open(other); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("Open with another key: %v, want seal.ErrOpen", err)
	}
	// The symmetric format of an earlier development version is not read.
	sym, _ := seal.New(bytes.Repeat([]byte{1}, seal.KeySize))
	v1 := *sc
	v1.KeySealed = sym.Seal(CertKeyInfo(sc.Host), keyPEM)
	if _, err := v1.Open(s); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("a key sealed with the routers' AES key: %v, want seal.ErrOpen", err)
	}
	moved := *sc
	moved.Host = "evil.example.com"
	if _, err := moved.Open(s); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("a sealed key moved to another host: %v, want seal.ErrOpen", err)
	}
}

// TestCertRecords: how each shape of certs/<host> lands in the snapshot.
func TestCertRecords(t *testing.T) {
	k, _ := NewKeys("")
	certPEM, keyPEM, _, err := etcdtest.SelfSigned("a.example.com")
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _, _ := etcdtest.SelfSigned("a.example.com")
	tests := []struct {
		name      string
		rec       Cert
		ok, clear bool
	}{
		{"sealed", Cert{Cert: string(certPEM), KeySealed: []byte{1, 2, 3}}, true, false},
		{"clear, from before keys were sealed", Cert{Cert: string(certPEM), Key: string(keyPEM)}, true, true},
		{"clear key of another certificate", Cert{Cert: string(certPEM), Key: string(otherKey)}, false, false},
		{"both", Cert{Cert: string(certPEM), Key: string(keyPEM), KeySealed: []byte{1}}, false, false},
		{"no key", Cert{Cert: string(certPEM)}, false, false},
		{"no certificate", Cert{Cert: "nope", KeySealed: []byte{1}}, false, false},
		{"a key as the certificate", Cert{Cert: string(keyPEM), KeySealed: []byte{1}}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newApplier(k, emptySnapshot())
			key, _ := k.Cert("a.example.com")
			b, _ := json.Marshal(tc.rec)
			err := a.apply(key, b, false)
			sc := a.s.Certs["a.example.com"]
			if tc.ok != (err == nil && sc != nil) {
				t.Fatalf("apply: %v, %+v; want ok=%v", err, sc, tc.ok)
			}
			if tc.ok && sc.ClearKey() != tc.clear {
				t.Errorf("ClearKey %v, want %v", sc.ClearKey(), tc.clear)
			}
		})
	}
}

// FuzzCertRecord: any value at certs/<host> is either refused or kept
// with a parsed leaf and exactly one form of the key; never a panic.
func FuzzCertRecord(f *testing.F) {
	certPEM, keyPEM, _, err := etcdtest.SelfSigned("a.example.com")
	if err != nil {
		f.Fatal(err)
	}
	rcpt, _ := seal.RecipientFromKey(bytes.Repeat([]byte{1}, seal.KeySize))
	sealed, _ := SealCertKey(rcpt, "a.example.com", keyPEM)
	for _, c := range []Cert{{Cert: string(certPEM), KeySealed: sealed}, {Cert: string(certPEM), KeySealed: []byte{1, 2}},
		{Cert: string(certPEM), Key: string(keyPEM)}, {Cert: "x"}} {
		b, _ := json.Marshal(c)
		f.Add(string(b))
	}
	f.Add(`{"cert":null,"keySealed":"!!"}`)
	k, _ := NewKeys("")
	key, _ := k.Cert("a.example.com")
	f.Fuzz(func(t *testing.T, value string) {
		a := newApplier(k, emptySnapshot())
		err := a.apply(key, []byte(value), false)
		sc := a.s.Certs["a.example.com"]
		if (err == nil) != (sc != nil) {
			t.Fatalf("apply: %v, record %+v", err, sc)
		}
		if sc != nil && (sc.Leaf == nil || (len(sc.KeySealed) > 0) == (sc.ClearKeyPEM != nil)) {
			t.Fatalf("kept %+v: want a leaf and one form of the key", sc)
		}
	})
}
