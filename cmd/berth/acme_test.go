package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/berthproject/berth/internal/acmetest"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

// TestACMERefusesWithoutKey: --acme does not start without an HTTPS
// listener or a readable key, and never quotes the key file.
func TestACMERefusesWithoutKey(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("not-a-key-but-a-secret"), 0o600)
	good := filepath.Join(dir, "good.key")
	os.WriteFile(good, []byte(strings.Repeat("ab", 32)), 0o600)
	k, _ := registry.NewKeys("")
	log, _ := test.NewNullLogger()
	tests := []struct {
		name, keyFile, tlsAddr, want string
		given                        bool
	}{
		{"no https listener", good, "", "--acme needs an HTTPS listener", false},
		{"missing key file", filepath.Join(dir, "missing"), "127.0.0.1:443", "--router-key-file", false},
		{"bad key file", bad, "127.0.0.1:443", "--router-key-file", false},
		{"missing key file given", filepath.Join(dir, "missing"), "127.0.0.1:443", "--router-key-file", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := RouterOptions{ACME: ACMEOptions{Enable: true}, RouterKey: RouterKeyOptions{File: tc.keyFile}}
			key, err := o.routerKey(log)
			if err == nil {
				_, err = o.ACME.enable(nil, nil, k, key, "127.0.0.1:80", tc.tlsAddr, log)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
				t.Errorf("got %v, want an error naming %q and not quoting the key", err, tc.want)
			}
			if code := exitCode(io.Discard, err); code != exitUsage {
				t.Errorf("exit code %d, want the usage code", code)
			}
		})
	}
}

// TestRouterKeyWithoutACME: a router without --acme runs without the
// routers' key at the default path, warning that the certificates of
// berth cert put are not served; a key file given by flag or environment
// must read.
func TestRouterKeyWithoutACME(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "router.key")
	os.WriteFile(good, []byte(strings.Repeat("ab", 32)), 0o600)
	missing := filepath.Join(dir, "missing")
	log, hook := test.NewNullLogger()
	for _, tc := range []struct {
		name    string
		args    []string
		env     string
		wantErr bool
		warn    bool
	}{
		{"default path missing", nil, "", false, true},
		{"flag names a missing file", []string{"--router-key-file", missing}, "", true, false},
		{"old flag name", []string{"--acme-key-file", missing}, "", true, false},
		{"environment names a missing file", nil, missing, true, false},
		{"key read", []string{"--router-key-file", good}, "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hook.Reset()
			t.Setenv("BERTH_ROUTER_ACME_KEY_FILE", tc.env)
			var o RouterOptions
			f := pflag.NewFlagSet("router", pflag.ContinueOnError)
			o.AddFlags(f)
			if tc.args == nil && tc.env == "" {
				o.RouterKey.File = missing // the default path, on a node without the key
			}
			if err := f.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			key, err := o.routerKey(log)
			if tc.wantErr != (err != nil) || (err != nil && !strings.Contains(err.Error(), "--router-key-file")) {
				t.Fatalf("got %v, want an error naming --router-key-file: %v", err, tc.wantErr)
			}
			if !tc.wantErr && !tc.warn && len(key) != 32 {
				t.Errorf("key %x, want 32 bytes", key)
			}
			warned := hook.LastEntry() != nil && strings.Contains(hook.LastEntry().Message, "berth cert put are not served")
			if warned != tc.warn {
				t.Errorf("warned %v, want %v (%v)", warned, tc.warn, hook.AllEntries())
			}
		})
	}
}

// TestZapToLogrus: certmagic's zap logs arrive in logrus with their
// level, message and fields.
func TestZapToLogrus(t *testing.T) {
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	z := zapToLogrus(log).With(zap.String("issuer", "pebble"))
	z.Warn("renewal failed", zap.String("identifier", "a.example.com"))
	z.Debug("quiet")
	e := hook.AllEntries()
	if len(e) != 2 || e[0].Level != logrus.WarnLevel || e[0].Message != "renewal failed" ||
		e[0].Data["issuer"] != "pebble" || e[0].Data["identifier"] != "a.example.com" || e[1].Level != logrus.DebugLevel {
		t.Errorf("got %+v", e)
	}
}

// TestRouterCommandACME runs "berth router --acme" as systemd starts it,
// with the sockets named http and https, against Pebble validating on
// them: the first HTTPS request for an app's domain gets a certificate
// from the CA, over HTTP/2.
func TestRouterCommandACME(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from backend")
	}))
	defer backend.Close()
	srv := etcdWithWebDomain(t, strings.TrimPrefix(backend.URL, "http://"))
	var files []*os.File
	var ports []int
	for range 2 {
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		f, _ := l.File()
		files, ports = append(files, f), append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	ca := acmetest.StartPebble(t, ports[0], ports[1])
	keyFile := filepath.Join(t.TempDir(), "acme.key")
	os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)

	notify, msgs := notifySocket(t)
	activatedNamed(t, files, "http:https", notify, "router", "--etcd-endpoints", srv.Endpoint, "--admin", "",
		"--log-level", "warn", "--acme", "--acme-ca", ca.Directory, "--acme-ca-root", ca.APIRootFile, "--acme-key-file", keyFile)
	waitMsg(t, msgs, "READY=1")

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.IssuingRoots(t)},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", ports[1]))
		},
	}}
	resp, err := hc.Get("https://web.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(body) != "hello from backend" {
		t.Errorf("got %s %s %q, want 200 over HTTP/2 from the backend", resp.Proto, resp.Status, body)
	}
}

// TestRouterCommandACMEDNS01 runs "berth router --acme
// --acme-route53-zone" with a wildcard domain: the certificate comes by
// DNS-01 through the Route53 fake (credentials from AWS_* variables) and
// the first HTTPS request for a name under it is answered.
func TestRouterCommandACMEDNS01(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from backend")
	}))
	defer backend.Close()
	srv := etcdWithWebInstance(t, strings.TrimPrefix(backend.URL, "http://"))
	k, _ := registry.NewKeys("")
	dk, _ := k.Domain("*.wild.test")
	if _, err := etcdtest.Client(t, srv.Endpoint).Put(t.Context(), dk, `{"app":"web"}`); err != nil {
		t.Fatal(err)
	}
	var files []*os.File
	for range 2 {
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		f, _ := l.File()
		files = append(files, f)
	}
	fake := acmetest.StartRoute53(t, "wild.test")
	ca := acmetest.StartPebbleDNS(t, 1, 1, fake.DNSAddr) // DNS-01 only: no HTTP or TLS validation
	keyFile := filepath.Join(t.TempDir(), "acme.key")
	os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	t.Setenv("AWS_ACCESS_KEY_ID", fake.Creds.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", fake.Creds.SecretAccessKey)
	t.Setenv("AWS_SESSION_TOKEN", fake.Creds.Token)
	t.Setenv("BERTH_ROUTER_ACME_ROUTE53_ZONE", fake.ZoneID)

	notify, msgs := notifySocket(t)
	activatedNamed(t, files, "http:https", notify, "router", "--etcd-endpoints", srv.Endpoint, "--admin", "",
		"--log-level", "warn", "--acme", "--acme-ca", ca.Directory, "--acme-ca-root", ca.APIRootFile, "--acme-key-file", keyFile,
		"--acme-route53-endpoint", fake.URL, "--acme-dns01-resolvers", fake.DNSAddr)
	waitMsg(t, msgs, "READY=1")

	l, _ := net.FileListener(files[1])
	https := l.Addr().String()
	l.Close()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.IssuingRoots(t)},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, https)
		},
	}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := hc.Get("https://shop.wild.test/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(body) != "hello from backend" {
				t.Errorf("got %s %s %q, want 200 over HTTP/2 from the backend", resp.Proto, resp.Status, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate for *.wild.test after 60s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := fake.Changes(); len(got) != 2 || !strings.HasPrefix(got[0], "UPSERT _acme-challenge.wild.test.") {
		t.Errorf("Route53 changes %q, want the challenge record written and removed", got)
	}
}

func TestACMERoute53ZoneRefused(t *testing.T) {
	var o ACMEOptions
	o.Route53Zone = "Z1/../hostedzone/x"
	_, err := o.enable(nil, nil, registry.Keys{}, nil, "", "127.0.0.1:443", nil)
	if err == nil || !strings.Contains(err.Error(), "--acme-route53-zone") {
		t.Errorf("got %v, want an error naming --acme-route53-zone", err)
	}
}
