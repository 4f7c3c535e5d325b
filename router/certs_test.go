package router

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/seal"
)

// tlsRouter is a router on its own watch cache with its own logger,
// serving TLS the way berth router does (NewServer, GetCertificate, no
// certificate from files).
type tlsRouter struct {
	r    *Router
	hook *test.Hook
	addr string
}

func startTLSRouter(t *testing.T, cli *clientv3.Client, key []byte) *tlsRouter {
	t.Helper()
	k, _ := registry.NewKeys("")
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	cache := registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log)
	r, err := New(Config{RouterKey: key}, cache, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); cache.Run(ctx) }()
	go func() { defer wg.Done(); r.Run(ctx) }()
	go func() { defer wg.Done(); r.RunCertRecipient(ctx, cli, cli, k) }()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(r, &tls.Config{GetCertificate: r.GetCertificate, NextProtos: TLSProtos()})
	go srv.ServeTLS(l)
	t.Cleanup(func() { srv.Close(); cancel(); wg.Wait() })
	return &tlsRouter{r: r, hook: hook, addr: l.Addr().String()}
}

// waitRev waits until the router's table reflects etcd revision rev.
func (tr *tlsRouter) waitRev(t *testing.T, rev int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !tr.r.Ready() || tr.r.table.Load().Rev < rev {
		if time.Now().After(deadline) {
			t.Fatalf("router table not at revision %d", rev)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// handshake does a real TLS handshake for serverName and returns the
// leaf the router presented, or the handshake's error.
func (tr *tlsRouter) handshake(serverName string) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tr.addr,
		&tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// logged counts the entries at level whose message holds about.
func (tr *tlsRouter) logged(level logrus.Level, about string) int {
	n := 0
	for _, e := range tr.hook.AllEntries() {
		if e.Level == level && strings.Contains(e.Message, about) {
			n++
		}
	}
	return n
}

// waitFor polls cond for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// publishedRecipient waits for a router to publish the certificate
// recipient and returns it, as berth cert put reads it.
func publishedRecipient(t *testing.T, cli *clientv3.Client) *seal.Recipient {
	t.Helper()
	k, _ := registry.NewKeys("")
	var r *seal.Recipient
	waitFor(t, "a published certificate recipient", func() bool {
		var err error
		r, err = registry.GetCertRecipient(t.Context(), cli, k)
		return err == nil
	})
	return r
}

// warnings counts the warnings logged about host.
func (tr *tlsRouter) warnings(host, about string) int {
	n := 0
	for _, e := range tr.hook.AllEntries() {
		if e.Level == logrus.WarnLevel && e.Data["host"] == host && strings.Contains(e.Message, about) {
			n++
		}
	}
	return n
}

// TestSealedCertificates: a router with the routers' key publishes the
// recipient derived from it; the private key of a certificate in etcd is
// sealed to that recipient, by a writer holding no router key. The router
// serves it by SNI in a real handshake; a router with another key logs
// that the routers disagree, counts it and leaves the published recipient
// alone; it and a router with no key do not serve the certificate, say
// so once, and keep serving the rest (a record with its key in clear,
// from before keys were sealed) and following the watch. A sealed key
// copied into another host's record does not open.
func TestSealedCertificates(t *testing.T) {
	_, cli := etcdtest.New(t)
	ctx := t.Context()
	k, _ := registry.NewKeys("")
	key := bytes.Repeat([]byte{3}, seal.KeySize)
	good := startTLSRouter(t, cli, key)
	rcpt := publishedRecipient(t, cli)
	if want, _ := seal.RecipientFromKey(key); !rcpt.Equal(want) {
		t.Fatalf("published recipient %s, want the one derived from the router's key (%s)", rcpt.Fingerprint(), want.Fingerprint())
	}
	published, _ := cli.Get(ctx, k.CertRecipient())
	wrong := startTLSRouter(t, cli, bytes.Repeat([]byte{4}, seal.KeySize))
	none := startTLSRouter(t, cli, nil)
	routers := map[string]*tlsRouter{"good": good, "wrong": wrong, "none": none}
	waitFor(t, "the disagreement logged", func() bool {
		return wrong.logged(logrus.ErrorLevel, "routers disagree on --router-key-file") == 1
	})
	if got := testutil.ToFloat64(wrong.r.metrics.recipientConflicts); got != 1 {
		t.Errorf("conflicts counted by the router with another key: %v, want 1", got)
	}
	if got := testutil.ToFloat64(wrong.r.metrics.recipientConflict); got != 1 {
		t.Errorf("conflict gauge of the router with another key: %v, want 1", got)
	}
	if got := testutil.ToFloat64(good.r.metrics.recipientConflicts); got != 0 {
		t.Errorf("conflicts counted by the router that published: %v, want 0", got)
	}
	if now, _ := cli.Get(ctx, k.CertRecipient()); now.Kvs[0].ModRevision != published.Kvs[0].ModRevision {
		t.Errorf("the router with another key rewrote the recipient: %s", now.Kvs[0].Value)
	}

	put := func(key string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		resp, err := cli.Put(ctx, key, string(b))
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range routers {
			tr.waitRev(t, resp.Header.Revision)
		}
	}
	wildPEM, wildKey, wild, err := etcdtest.SelfSigned("*.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.PutCert(ctx, cli, k, "*.example.com", wildPEM, wildKey, rcpt); err != nil {
		t.Fatal(err)
	}
	// The same certificate and sealed key, copied to another host's record.
	wildRec, _ := k.Cert("*.example.com")
	resp, err := cli.Get(ctx, wildRec)
	if err != nil {
		t.Fatal(err)
	}
	var rec registry.Cert
	json.Unmarshal(resp.Kvs[0].Value, &rec)
	movedRec, _ := k.Cert("moved.example.org")
	put(movedRec, rec)
	// A record from before keys were sealed.
	oldPEM, oldKey, old, err := etcdtest.SelfSigned("old.example.net")
	if err != nil {
		t.Fatal(err)
	}
	oldRec, _ := k.Cert("old.example.net")
	put(oldRec, registry.Cert{Cert: string(oldPEM), Key: string(oldKey)})

	for name, tr := range routers {
		t.Run(name, func(t *testing.T) {
			for range 3 {
				leaf, err := tr.handshake("web.example.com")
				if name == "good" && (err != nil || !leaf.Equal(wild)) {
					t.Fatalf("web.example.com: got %v, %v; want the wildcard certificate from etcd", leaf, err)
				}
				if name != "good" && err == nil {
					t.Fatalf("web.example.com: got %v from a router without the key", leaf.Subject)
				}
			}
			if leaf, err := tr.handshake("moved.example.org"); err == nil {
				t.Errorf("moved.example.org: a sealed key copied from another host opened (%v)", leaf.Subject)
			}
			if leaf, err := tr.handshake("old.example.net"); err != nil || !leaf.Equal(old) {
				t.Errorf("old.example.net (key in clear): got %v, %v; want it served", leaf, err)
			}
			if n := tr.warnings("old.example.net", "stored in clear"); n != 1 {
				t.Errorf("%d warnings about the key in clear, want 1", n)
			}
			if got := testutil.ToFloat64(tr.r.metrics.etcdCertsClear); got != 1 {
				t.Errorf("clear-key gauge %v, want 1", got)
			}
			if n := tr.warnings("moved.example.org", "not served"); n != 1 {
				t.Errorf("%d warnings about the moved key, want 1", n)
			}
			wantSkips := map[string]float64{"good": 1, "wrong": 2, "none": 2}[name]
			reason := map[string]string{"good": "does-not-open", "wrong": "does-not-open", "none": "no-router-key"}[name]
			if got := testutil.ToFloat64(tr.r.metrics.etcdCertsSkipped.WithLabelValues(reason)); got != wantSkips {
				t.Errorf("skipped (%s) %v, want %v", reason, got, wantSkips)
			}
		})
	}

	// The watch goes on: a certificate stored later is served by the
	// router with the key, the records that did not open are not retried.
	nextPEM, nextKey, next, err := etcdtest.SelfSigned("next.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.PutCert(ctx, cli, k, "next.example.org", nextPEM, nextKey, rcpt); err != nil {
		t.Fatal(err)
	}
	nextRev, _ := cli.Get(ctx, "x")
	for _, tr := range routers {
		tr.waitRev(t, nextRev.Header.Revision)
	}
	if leaf, err := good.handshake("next.example.org"); err != nil || !leaf.Equal(next) {
		t.Errorf("next.example.org: got %v, %v; want the certificate stored after the failures", leaf, err)
	}
	if _, err := wrong.handshake("next.example.org"); err == nil {
		t.Error("next.example.org served by the router with another key")
	}
	if n := wrong.warnings("*.example.com", "not served"); n != 1 {
		t.Errorf("%d warnings about *.example.com after more changes and handshakes, want 1", n)
	}
	if n := none.warnings("*.example.com", "no --router-key-file"); n != 1 {
		t.Errorf("%d warnings about *.example.com on the router without a key, want 1", n)
	}
}

// TestCertRecipientRepublished: a running router watches the published
// recipient. Replaced by another one (whoever holds a reader's etcd
// credentials could), it logs the disagreement and raises the gauge
// without overwriting it; deleted, it publishes its own again and the
// gauge falls.
func TestCertRecipientRepublished(t *testing.T) {
	_, cli := etcdtest.New(t)
	ctx := t.Context()
	k, _ := registry.NewKeys("")
	key := bytes.Repeat([]byte{3}, seal.KeySize)
	tr := startTLSRouter(t, cli, key)
	first := publishedRecipient(t, cli)

	other, _ := seal.RecipientFromKey(bytes.Repeat([]byte{9}, seal.KeySize))
	resp, err := cli.Put(ctx, k.CertRecipient(), fmt.Sprintf(`{"kem":32,"kdf":1,"aead":2,"publicKey":%q}`,
		base64.StdEncoding.EncodeToString(other.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	replaced := resp.Header.Revision
	waitFor(t, "the disagreement logged", func() bool {
		return tr.logged(logrus.ErrorLevel, "routers disagree on --router-key-file") >= 1 &&
			testutil.ToFloat64(tr.r.metrics.recipientConflict) == 1
	})
	if got := testutil.ToFloat64(tr.r.metrics.recipientConflicts); got < 1 {
		t.Errorf("conflicts counted %v, want at least 1", got)
	}
	if now, _ := registry.GetCertRecipient(ctx, cli, k); !now.Equal(other) {
		t.Fatalf("the router overwrote the replaced recipient with %s", now.Fingerprint())
	}
	if now, _ := cli.Get(ctx, k.CertRecipient()); now.Kvs[0].ModRevision != replaced {
		t.Error("the replaced recipient was rewritten")
	}

	if _, err := cli.Delete(ctx, k.CertRecipient()); err != nil {
		t.Fatal(err)
	}
	if again := publishedRecipient(t, cli); !again.Equal(first) {
		t.Errorf("republished %s, want %s", again.Fingerprint(), first.Fingerprint())
	}
	waitFor(t, "the conflict gauge back to 0", func() bool { return testutil.ToFloat64(tr.r.metrics.recipientConflict) == 0 })
}

// BenchmarkEtcdCertificate: picking a certificate from etcd at a TLS
// handshake, with the opened key cached per record value (what the router
// does), against opening the sealed key at each handshake (the baseline
// the cache avoids: HPKE (an X25519 exchange, HKDF, AES-GCM), PEM and key
// parsing).
func BenchmarkEtcdCertificate(b *testing.B) {
	key := bytes.Repeat([]byte{3}, seal.KeySize)
	e := newEnv(b, Config{RouterKey: key})
	opener, _ := seal.PrivateFromKey(key)
	certPEM, keyPEM, _, err := etcdtest.SelfSigned("*.example.com")
	if err != nil {
		b.Fatal(err)
	}
	if err := registry.PutCert(context.Background(), e.cli, e.keys, "*.example.com", certPEM, keyPEM, opener.Recipient()); err != nil {
		b.Fatal(err)
	}
	resp, _ := e.cli.Get(context.Background(), "x")
	e.waitRev(resp.Header.Revision)
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if e.r.etcdCertificate("web.example.com") == nil {
				b.Fatal("no certificate")
			}
		}
	})
	b.Run("open-each-handshake", func(b *testing.B) {
		rec := e.cache.Snapshot().Certs["*.example.com"]
		for b.Loop() {
			if _, err := rec.Open(opener); err != nil {
				b.Fatal(err)
			}
		}
	})
}
