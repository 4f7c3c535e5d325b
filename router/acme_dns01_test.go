package router

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/acmetest"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/route53dns"
	"github.com/berthproject/berth/internal/ssmfetch"
)

// startDNS01Router starts a router with DNS-01 through the Route53 fake
// and its RunACME loop.
func (c *acmeCluster) startDNS01Router(fake *acmetest.Route53, httpLn, tlsLn net.Listener) *acmeRouter {
	c.t.Helper()
	ar := c.startRouter(httpLn, tlsLn, ACMEConfig{DNS01: &DNS01Config{
		Provider: &route53dns.Provider{ZoneID: fake.ZoneID, Endpoint: fake.URL, PollInterval: 20 * time.Millisecond,
			Credentials: func(context.Context) (ssmfetch.Credentials, error) { return fake.Creds, nil }},
		Resolvers: []string{fake.DNSAddr},
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ar.r.RunACME(ctx) }()
	c.t.Cleanup(func() { cancel(); <-done })
	return ar
}

// waitHandshake retries a handshake until the router serves a
// certificate (the wildcard's is obtained in the background).
func (c *acmeCluster) waitHandshake(addr, host string, within time.Duration) *x509.Certificate {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		leaf, err := c.handshake(addr, host)
		if err == nil {
			return leaf
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s at %s: no certificate after %s: %v", host, addr, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wildcardWrites is how often the certificate of *.<suffix> was written
// to the shared storage.
func (c *acmeCluster) wildcardWrites(suffix string) int64 {
	c.t.Helper()
	resp, err := c.cli.Get(context.Background(), acmePrefix+"data/certificates/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		c.t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if strings.HasSuffix(string(kv.Key), "/wildcard_."+suffix+"/wildcard_."+suffix+".crt") {
			return kv.Version
		}
	}
	return 0
}

// TestACMEDNS01: a wildcard domain gets one certificate by DNS-01 for
// three routers, through the Route53 API (fake) whose records Pebble reads
// over DNS; the challenge record is removed afterwards; a router started
// later serves the stored certificate with no new order; an exact domain
// on the same routers still validates over HTTP-01, without DNS.
func TestACMEDNS01(t *testing.T) {
	fake := acmetest.StartRoute53(t, "wild.test")
	_, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	c := &acmeCluster{t: t, cli: cli, keys: k, httpLn: listen(t), tlsLn: listen(t)}
	c.pebble = acmetest.StartPebbleDNS(t, port(c.httpLn), port(c.tlsLn), fake.DNSAddr)
	be, _ := backend(t, "web")
	routers := []*acmeRouter{c.startDNS01Router(fake, c.httpLn, c.tlsLn), c.startDNS01Router(fake, nil, nil), c.startDNS01Router(fake, nil, nil)}
	ik, _ := c.keys.Instance("web", "1")
	c.put(ik, registry.Instance{Addr: addr(be), State: registry.StateUp}, routers...)
	wk, _ := c.keys.Domain("*.wild.test")
	c.put(wk, registry.Domain{App: "web"}, routers...)

	var serial []byte
	for i, ar := range routers {
		leaf := c.waitHandshake(ar.tlsAddr, "a.wild.test", 60*time.Second)
		if !slices.Equal(leaf.DNSNames, []string{"*.wild.test"}) {
			t.Errorf("router %d serves %v, want the wildcard certificate", i, leaf.DNSNames)
		}
		if serial == nil {
			serial = leaf.SerialNumber.Bytes()
		} else if string(leaf.SerialNumber.Bytes()) != string(serial) {
			t.Errorf("router %d serves another certificate: want one order", i)
		}
	}
	if n := c.wildcardWrites("wild.test"); n != 1 {
		t.Errorf("wildcard certificate written %d times, want 1", n)
	}
	// The metrics say the same: one order by one router, timed.
	var orders, obtained, timed float64
	for _, ar := range routers {
		orders += testutil.ToFloat64(ar.r.acme.metrics.obtaining.WithLabelValues("false"))
		obtained += testutil.ToFloat64(ar.r.acme.metrics.obtained.WithLabelValues("false"))
		timed += float64(testutil.CollectAndCount(ar.r.acme.metrics.seconds))
	}
	if orders != 1 || obtained != 1 || timed != 1 {
		t.Errorf("metrics: %v orders, %v obtained, %v timed; want 1 each", orders, obtained, timed)
	}
	changes := fake.Changes()
	if want := []string{"UPSERT _acme-challenge.wild.test. TXT", "DELETE _acme-challenge.wild.test. TXT"}; !slices.Equal(changes, want) {
		t.Errorf("Route53 changes %q, want %q (one challenge, cleaned up)", changes, want)
	}
	if v := fake.Values("_acme-challenge.wild.test.", "TXT"); v != nil {
		t.Errorf("challenge record left: %q", v)
	}

	// Any name one label under the wildcard reaches the app over HTTP/2.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: c.pebble.IssuingRoots(t)},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, routers[1].tlsAddr)
		},
	}}
	resp, err := hc.Get("https://shop.wild.test/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.Contains(string(body), "web") {
		t.Errorf("GET https://shop.wild.test/: %s %s %q, want 200 over HTTP/2 from the app", resp.Proto, resp.Status, body)
	}

	late := c.startDNS01Router(fake, nil, nil)
	if leaf := c.waitHandshake(late.tlsAddr, "b.wild.test", 20*time.Second); string(leaf.SerialNumber.Bytes()) != string(serial) {
		t.Error("the late router serves another certificate")
	}
	if n := c.wildcardWrites("wild.test"); n != 1 || len(fake.Changes()) != 2 {
		t.Errorf("after the late router: %d writes, %d Route53 changes; want 1 and 2", n, len(fake.Changes()))
	}
	if got, loaded := testutil.ToFloat64(late.r.acme.metrics.obtaining.WithLabelValues("false")), testutil.ToFloat64(late.r.acme.metrics.loaded); got != 0 || loaded < 1 {
		t.Errorf("late router's metrics: %v orders, %v loaded; want 0 and at least 1", got, loaded)
	}

	// Exact domains keep HTTP-01 / TLS-ALPN-01 on demand.
	dk, _ := c.keys.Domain("exact.test")
	c.put(dk, registry.Domain{App: "web"}, routers...)
	if leaf, err := c.handshake(routers[2].tlsAddr, "exact.test"); err != nil || !slices.Equal(leaf.DNSNames, []string{"exact.test"}) {
		t.Fatalf("exact.test: %v", err)
	}
	if n := len(fake.Changes()); n != 2 {
		t.Errorf("%d Route53 changes after an exact domain's order, want 2", n)
	}
	// Two labels under the wildcard match no certificate and get none.
	if _, err := c.handshake(routers[0].tlsAddr, "x.y.wild.test"); err == nil {
		t.Error("x.y.wild.test got a certificate")
	}
}
