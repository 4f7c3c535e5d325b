package router

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/berthproject/berth/internal/acmestore"
	"github.com/berthproject/berth/internal/acmetest"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

// acmeCluster is routers sharing one etcd and one ACME storage prefix,
// issuing from a Pebble CA whose validation reaches routers[0]'s ports.
type acmeCluster struct {
	t      *testing.T
	cli    *clientv3.Client
	keys   registry.Keys
	pebble *acmetest.Pebble
	// httpLn and tlsLn are the listeners the CA validates against: the
	// first router serves them.
	httpLn, tlsLn net.Listener
}

const acmePrefix = "/berth/v1/acme/"

var acmeTestKey = bytes.Repeat([]byte{42}, acmestore.KeySize)

// acmeRouter is one router with ACME, its TLS address and its store.
type acmeRouter struct {
	r                 *Router
	httpAddr, tlsAddr string
}

// startRouter starts a router on the cluster's etcd; the first one takes
// the listeners the CA validates against.
func (c *acmeCluster) startRouter(httpLn, tlsLn net.Listener, acfg ACMEConfig) *acmeRouter {
	t := c.t
	t.Helper()
	log, _ := test.NewNullLogger()
	cache := registry.NewCache(c.cli, c.cli, registry.CacheConfig{Keys: c.keys}, log)
	r, err := New(Config{}, cache, log)
	if err != nil {
		t.Fatal(err)
	}
	store, err := acmestore.New(c.cli, acmePrefix, acmeTestKey, 2*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	if httpLn == nil {
		httpLn, tlsLn = listen(t), listen(t)
	}
	acfg.CA, acfg.TrustedRoots, acfg.Storage = c.pebble.Directory, c.pebble.APIRoots, store
	acfg.HTTPAddr, acfg.TLSAddr = httpLn.Addr().String(), tlsLn.Addr().String()
	acfg.Logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	if err := r.EnableACME(acfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); cache.Run(ctx) }()
	go func() { defer wg.Done(); r.Run(ctx) }()
	srv := NewServer(r, &tls.Config{GetCertificate: r.GetCertificate, NextProtos: TLSProtos()})
	go srv.Serve(httpLn)
	go srv.ServeTLS(tlsLn)
	t.Cleanup(func() { srv.Close(); r.StopACME(); store.Close(); cancel(); wg.Wait() })
	for !r.Ready() {
		time.Sleep(5 * time.Millisecond)
	}
	return &acmeRouter{r: r, httpAddr: httpLn.Addr().String(), tlsAddr: tlsLn.Addr().String()}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// put writes a registry record and waits until every router has it.
func (c *acmeCluster) put(key string, v any, routers ...*acmeRouter) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	resp, err := c.cli.Put(context.Background(), key, string(b))
	if err != nil {
		c.t.Fatal(err)
	}
	for _, ar := range routers {
		for ar.r.table.Load().Rev < resp.Header.Revision {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// certWrites returns how often the certificate of host was written to
// the ACME storage: its etcd key's version (0: never).
func (c *acmeCluster) certWrites(host string) int64 {
	c.t.Helper()
	resp, err := c.cli.Get(context.Background(), acmePrefix+"data/certificates/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		c.t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if strings.HasSuffix(string(kv.Key), "/"+host+"/"+host+".crt") {
			return kv.Version
		}
	}
	return 0
}

// handshake connects to addr with SNI host and returns the leaf the
// router served, verified against the CA's roots.
func (c *acmeCluster) handshake(addr, host string) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: host, RootCAs: c.pebble.IssuingRoots(c.t), NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// TestACME issues certificates from Pebble with real HTTP-01 and
// TLS-ALPN-01 validations against a router other than the one that
// orders, one order per host when three routers see the first handshake
// at once, and no order for names that are no app's exact domain.
func TestACME(t *testing.T) {
	c := newACMECluster(t)
	be, _ := backend(t, "web")
	// The CA's validations reach this router only; the others order.
	validating := c.startRouter(c.httpLn, c.tlsLn, ACMEConfig{})
	for _, tc := range []struct {
		name string
		host string
		acfg ACMEConfig
	}{
		{"http-01", "http01.test", ACMEConfig{DisableTLSALPNChallenge: true}},
		{"tls-alpn-01", "alpn.test", ACMEConfig{DisableHTTPChallenge: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			routers := []*acmeRouter{c.startRouter(nil, nil, tc.acfg), c.startRouter(nil, nil, tc.acfg), c.startRouter(nil, nil, tc.acfg)}
			dk, _ := c.keys.Domain(tc.host)
			ik, _ := c.keys.Instance("web", "1")
			c.put(ik, registry.Instance{Addr: addr(be), State: registry.StateUp}, append(routers, validating)...)
			c.put(dk, registry.Domain{App: "web"}, append(routers, validating)...)

			// The three routers see the first handshake at once.
			leaves := make([]*x509.Certificate, len(routers))
			errs := make([]error, len(routers))
			var wg sync.WaitGroup
			for i, ar := range routers {
				wg.Go(func() { leaves[i], errs[i] = c.handshake(ar.tlsAddr, tc.host) })
			}
			wg.Wait()
			for i := range routers {
				if errs[i] != nil {
					t.Fatalf("router %d: handshake: %v", i, errs[i])
				}
				if leaves[i].SerialNumber.Cmp(leaves[0].SerialNumber) != 0 {
					t.Errorf("router %d serves serial %x, router 0 %x: want one certificate", i, leaves[i].SerialNumber, leaves[0].SerialNumber)
				}
			}
			if n := c.certWrites(tc.host); n != 1 {
				t.Errorf("certificate written %d times, want 1 (one order)", n)
			}

			// HTTP/2 over TLS to the app.
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				TLSClientConfig:   &tls.Config{RootCAs: c.pebble.IssuingRoots(t)},
				ForceAttemptHTTP2: true,
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, routers[2].tlsAddr)
				},
			}}
			resp, err := hc.Get("https://" + tc.host + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.Contains(string(body), "web") {
				t.Errorf("GET over TLS: %s %s %q, want 200 over HTTP/2 from the app", resp.Proto, resp.Status, body)
			}

			// A router started later serves the stored certificate, with no
			// new order.
			late := c.startRouter(nil, nil, tc.acfg)
			leaf, err := c.handshake(late.tlsAddr, tc.host)
			if err != nil || leaf.SerialNumber.Cmp(leaves[0].SerialNumber) != 0 {
				t.Errorf("late router: %v, serial %v, want the stored certificate", err, leaf)
			}
			if n := c.certWrites(tc.host); n != 1 {
				t.Errorf("after the late router: certificate written %d times, want 1", n)
			}
		})
	}
	c.t = t
	hostile(t, c, validating)
}

// hostile: names that are no app's exact domain get no certificate and
// no order; a malformed stored value is replaced.
func hostile(t *testing.T, c *acmeCluster, validating *acmeRouter) {
	ar := c.startRouter(nil, nil, ACMEConfig{})
	wk, _ := c.keys.Domain("*.wild.test")
	c.put(wk, registry.Domain{App: "web"}, ar)
	for _, host := range []string{"evil.test", "x.wild.test", "web.evil.test", "web"} {
		t.Run("sni "+host, func(t *testing.T) {
			if leaf, err := c.handshake(ar.tlsAddr, host); err == nil {
				t.Errorf("handshake succeeded with %v, want an alert", leaf.DNSNames)
			}
			if n := c.certWrites(host); n != 0 {
				t.Errorf("certificate for %s written %d times, want no order", host, n)
			}
		})
	}
	t.Run("http-01 path for another host", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+ar.httpAddr+"/.well-known/acme-challenge/x", nil)
		req.Host = "evil.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("got %d, want 404", resp.StatusCode)
		}
	})
	t.Run("malformed stored certificate", func(t *testing.T) {
		dk, _ := c.keys.Domain("bad.test")
		c.put(dk, registry.Domain{App: "web"}, ar, validating)
		resp, _ := c.cli.Get(context.Background(), acmePrefix+"data/certificates/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if len(resp.Kvs) == 0 {
			t.Fatal("no certificates stored by the earlier cases")
		}
		issuerDir := strings.SplitN(strings.TrimPrefix(string(resp.Kvs[0].Key), acmePrefix+"data/certificates/"), "/", 2)[0]
		for _, ext := range []string{".crt", ".key", ".json"} {
			c.cli.Put(context.Background(), acmePrefix+"data/certificates/"+issuerDir+"/bad.test/bad.test"+ext, "garbage")
		}
		if _, err := c.handshake(ar.tlsAddr, "bad.test"); err != nil {
			t.Fatalf("handshake: %v, want a new certificate in place of the malformed one", err)
		}
	})
}

// TestACMERenewal: a stored certificate near its expiry is renewed by
// exactly one of three routers that see it at once, and all serve the
// new one.
func TestACMERenewal(t *testing.T) {
	c := newACMECluster(t)
	acfg := ACMEConfig{DisableTLSALPNChallenge: true}
	first := c.startRouter(c.httpLn, c.tlsLn, acfg)
	const host = "renew.test"
	dk, _ := c.keys.Domain(host)
	c.put(dk, registry.Domain{App: "web"}, first)
	if _, err := c.handshake(first.tlsAddr, host); err != nil {
		t.Fatal(err)
	}
	// Replace the stored certificate by one for the same key that expires
	// in an hour, 90 days after it began: deep in the renewal window.
	nl, _ := test.NewNullLogger()
	store, _ := acmestore.New(c.cli, acmePrefix, acmeTestKey, 0, nl)
	crtKey, keyKey := c.storedPaths(host)
	keyPEM, err := store.Load(t.Context(), keyKey)
	if err != nil {
		t.Fatal(err)
	}
	old := nearExpiry(t, host, keyPEM)
	if err := store.Store(t.Context(), crtKey, old); err != nil {
		t.Fatal(err)
	}
	before := c.certWrites(host)

	routers := []*acmeRouter{c.startRouter(nil, nil, acfg), c.startRouter(nil, nil, acfg), c.startRouter(nil, nil, acfg)}
	var wg sync.WaitGroup
	for _, ar := range routers {
		wg.Go(func() { c.handshakeAny(ar.tlsAddr, host) })
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for c.certWrites(host) == before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // room for a second, wrong renewal
	if n := c.certWrites(host) - before; n != 1 {
		t.Fatalf("certificate renewed %d times, want exactly 1", n)
	}
	for i, ar := range routers {
		var leaf *x509.Certificate
		for time.Now().Before(deadline) {
			if leaf, err = c.handshake(ar.tlsAddr, host); err == nil && time.Until(leaf.NotAfter) > 2*time.Hour {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil || time.Until(leaf.NotAfter) < 2*time.Hour {
			t.Errorf("router %d: %v; want the renewed certificate", i, err)
		}
	}
}

// handshakeAny handshakes without verifying: the near-expiry certificate
// is self-signed.
func (c *acmeCluster) handshakeAny(addr, host string) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: host, InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
	}
}

// storedPaths returns the storage keys of host's certificate and key.
func (c *acmeCluster) storedPaths(host string) (crt, key string) {
	resp, _ := c.cli.Get(context.Background(), acmePrefix+"data/certificates/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	for _, kv := range resp.Kvs {
		if k := strings.TrimPrefix(string(kv.Key), acmePrefix+"data/"); strings.HasSuffix(k, "/"+host+".crt") {
			return k, strings.TrimSuffix(k, ".crt") + ".key"
		}
	}
	c.t.Fatalf("no stored certificate for %s", host)
	return "", ""
}

func nearExpiry(t *testing.T, host string, keyPEM []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		t.Fatal("stored key is not PEM")
	}
	var key any
	var err error
	if key, err = x509.ParseECPrivateKey(b.Bytes); err != nil {
		if key, err = x509.ParsePKCS8PrivateKey(b.Bytes); err != nil {
			t.Fatal(err)
		}
	}
	signer := key.(crypto.Signer)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-90 * 24 * time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// newACMECluster starts etcd, a DNS server answering 127.0.0.1 for every
// name, and Pebble validating against two listeners the first router
// will serve.
func newACMECluster(t *testing.T) *acmeCluster {
	t.Helper()
	_, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	c := &acmeCluster{t: t, cli: cli, keys: k, httpLn: listen(t), tlsLn: listen(t)}
	c.pebble = acmetest.StartPebble(t, port(c.httpLn), port(c.tlsLn))
	return c
}

func port(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }
