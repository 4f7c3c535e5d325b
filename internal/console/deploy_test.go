package console

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/seal"
)

// TestConsoleDeployAndCertificates: a rollout's progress on the apps and
// app pages, and certificates with their time left.
func TestConsoleDeployAndCertificates(t *testing.T) {
	e := newEnv(t, true)
	e.seed()
	e.put(e.key(e.keys.RolloutKey("shop")), registry.Rollout{From: 1, To: 2, Strategy: registry.StrategyRolling,
		Phase: registry.PhaseRolling, Deadline: time.Now().Add(time.Minute).UnixMilli()})
	e.put(e.key(e.keys.Instance("shop", "3")), registry.Instance{Addr: "127.0.0.1:4003", Node: "n1", State: registry.StateUp, Gen: 2, Version: "1.3.0"})
	until(t, "the rollout on the apps page", func() bool {
		_, _, b := e.get("/", "")
		return strings.Contains(b, `<span class="deploy">rolling 1→2 <progress max="2" value="1"`)
	})
	_, _, b := e.get("/apps/shop", "")
	for _, w := range []string{`rolling 1→2`, `gen 2`, `<span class="muted">rolling</span>`} {
		if !strings.Contains(b, w) {
			t.Errorf("app page lacks %q", w)
		}
	}

	for _, c := range []struct {
		host string
		left time.Duration
		want string
	}{
		{"ok.example.com", 60 * 24 * time.Hour, `<span class="badge ok">59d`},
		{"soon.example.com", 3 * 24 * time.Hour, `<span class="badge warn">2d23h`},
		{"old.example.com", -time.Hour, `<span class="badge bad">expired`},
	} {
		certPEM, keyPEM := selfSigned(t, c.host, time.Now().Add(c.left))
		if err := registry.PutCert(t.Context(), e.cli, e.keys, c.host, certPEM, keyPEM, testRecipient(t)); err != nil {
			t.Fatal(err)
		}
		until(t, c.host+" on the certificates page", func() bool {
			_, _, b := e.get("/certificates", "")
			return strings.Contains(b, `<tr data-host="`+c.host+`">`)
		})
		_, _, b := e.get("/certificates", "")
		if !strings.Contains(b, c.want) {
			t.Errorf("%s: the page lacks %q", c.host, c.want)
		}
		if strings.Contains(b, "PRIVATE KEY") || strings.Contains(b, ">clear key<") {
			t.Fatal("the certificates page shows a key, or a sealed key as clear")
		}
	}
	// A record from before keys were sealed is flagged.
	certPEM, keyPEM := selfSigned(t, "legacy.example.com", time.Now().Add(time.Hour*24*90))
	key, _ := e.keys.Cert("legacy.example.com")
	v, _ := json.Marshal(registry.Cert{Cert: string(certPEM), Key: string(keyPEM)})
	if _, err := e.cli.Put(t.Context(), key, string(v)); err != nil {
		t.Fatal(err)
	}
	until(t, "legacy.example.com flagged on the certificates page", func() bool {
		_, _, b := e.get("/certificates", "")
		return strings.Contains(b, `<tr data-host="legacy.example.com">`) && strings.Contains(b, `>clear key</span>`)
	})
}

func selfSigned(t *testing.T, host string, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: notAfter.Add(-90 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// testRecipient seals certificate keys as the routers' recipient would.
func testRecipient(t *testing.T) *seal.Recipient {
	t.Helper()
	r, err := seal.RecipientFromKey(bytes.Repeat([]byte{5}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return r
}
