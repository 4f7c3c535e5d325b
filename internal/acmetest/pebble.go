// Package acmetest runs Pebble, Let's Encrypt's test ACME CA, for one
// test, with a DNS server that resolves every name to 127.0.0.1, so that
// Pebble's validations (HTTP-01, TLS-ALPN-01) reach routers listening on
// the loopback; and a fake of Route53's REST API whose records a DNS server
// serves, for DNS-01 (route53.go). Tests skip when the pebble binary (Debian package pebble,
// installed by bin/test) is missing.
package acmetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/berthproject/berth/internal/etcdtest"
)

// Pebble is a running Pebble CA, stopped when the test ends.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// APIRoots trusts the certificate of Pebble's API; APIRootFile holds
	// it as PEM.
	APIRoots    *x509.CertPool
	APIRootFile string

	mgmt  string // management URL
	once  sync.Once
	roots *x509.CertPool
}

// StartPebble starts Pebble validating HTTP-01 on httpPort and
// TLS-ALPN-01 on tlsPort of 127.0.0.1, without the random sleeps and
// nonce rejections Pebble adds by default.
func StartPebble(t testing.TB, httpPort, tlsPort int) *Pebble {
	t.Helper()
	if _, err := exec.LookPath("pebble"); err != nil {
		t.Skip("pebble is not installed (bin/test installs the Debian package)")
	}
	return StartPebbleDNS(t, httpPort, tlsPort, startDNS(t))
}

// StartPebbleDNS is StartPebble with Pebble resolving names (A for
// HTTP-01 and TLS-ALPN-01, TXT for DNS-01) at the DNS server dnsAddr,
// such as a Route53 fake's.
func StartPebbleDNS(t testing.TB, httpPort, tlsPort int, dnsAddr string) *Pebble {
	t.Helper()
	bin, err := exec.LookPath("pebble")
	if err != nil {
		t.Skip("pebble is not installed (bin/test installs the Debian package)")
	}
	dir := t.TempDir()
	certPEM, keyPEM, _, err := etcdtest.SelfSigned("localhost")
	if err != nil {
		t.Fatal(err)
	}
	p := &Pebble{APIRoots: x509.NewCertPool(), APIRootFile: filepath.Join(dir, "cert.pem")}
	p.APIRoots.AppendCertsFromPEM(certPEM)
	os.WriteFile(p.APIRootFile, certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)
	apiAddr, mgmtAddr := freeAddr(t), freeAddr(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": apiAddr, "managementListenAddress": mgmtAddr,
		"certificate": p.APIRootFile, "privateKey": filepath.Join(dir, "key.pem"),
		"httpPort": httpPort, "tlsPort": tlsPort, "ocspResponderURL": "", "externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, "pebble.json"), b, 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-config", filepath.Join(dir, "pebble.json"), "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	var out SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("pebble:\n%s", out.String())
		}
	})
	// The API's certificate names localhost.
	local := func(a string) string { return "https://" + strings.Replace(a, "127.0.0.1", "localhost", 1) }
	p.Directory, p.mgmt = local(apiAddr)+"/dir", local(mgmtAddr)
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.APIRoots}}}
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := hc.Get(p.Directory)
		if err == nil {
			resp.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// IssuingRoots returns the root Pebble issues under, to verify the
// certificates routers serve.
func (p *Pebble) IssuingRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	p.once.Do(func() {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.APIRoots}}}
		resp, err := hc.Get(p.mgmt + "/roots/0")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		p.roots = x509.NewCertPool()
		if !p.roots.AppendCertsFromPEM(b) {
			t.Fatalf("pebble root: %q", b)
		}
	})
	return p.roots
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startDNS answers every A query with 127.0.0.1 and everything else with
// no records.
func startDNS(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, qq := range q.Question {
			if qq.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
					A: net.IPv4(127, 0, 0, 1)})
			}
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// SyncBuffer is a bytes.Buffer a child process's output can be written
// to (Pebble's here) while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
