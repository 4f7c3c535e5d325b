package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/berthproject/berth/internal/acmetest"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/seal"
)

// TestCertPut: berth cert put seals the private key to the routers'
// recipient. With none published and no router key it refuses, naming
// the key and the fix; with --router-key-file (or its earlier name) it
// seals to the recipient derived from it; once a router has published
// its recipient it seals to that without any router key, and refuses a
// router key file that does not match it. It refuses a key that is not
// the certificate's; the key never reaches etcd in clear.
func TestCertPut(t *testing.T) {
	t.Setenv("BERTH_ROUTER_KEY_FILE", "")
	t.Setenv("BERTH_ROUTER_ACME_KEY_FILE", "")
	srv, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	certPEM, keyPEM, _, err := etcdtest.SelfSigned("web.example.com")
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _, _ := etcdtest.SelfSigned("web.example.com")
	certFile, keyFile, otherFile := write("cert.pem", certPEM), write("key.pem", keyPEM), write("other.pem", otherKey)
	routerKey := write("router.key", []byte(strings.Repeat("5a", seal.KeySize)))
	strangerKey := write("stranger.key", []byte(strings.Repeat("a5", seal.KeySize)))
	missing := filepath.Join(dir, "missing.key")
	put := func(args ...string) (int, string, string) {
		t.Helper()
		return berth(t, append([]string{"cert", "put", "--etcd-endpoints", srv.Endpoint}, args...)...)
	}
	rec, _ := k.Cert("web.example.com")
	// opens reports whether the stored key opens with the private side
	// derived from keyFile.
	opens := func(keyFile string) error {
		t.Helper()
		log, _ := test.NewNullLogger()
		snap, err := registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log).Load(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		key, _ := seal.ReadKeyFile(keyFile)
		o, _ := seal.PrivateFromKey(key)
		_, err = snap.Certs["web.example.com"].Open(o)
		return err
	}
	stored := func() string {
		t.Helper()
		resp, err := cli.Get(t.Context(), rec)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s: %v", rec, err)
		}
		v := string(resp.Kvs[0].Value)
		if strings.Contains(v, "PRIVATE KEY") || !strings.Contains(v, `"keySealed"`) || strings.Contains(v, base64.StdEncoding.EncodeToString(keyPEM)[30:60]) {
			t.Fatalf("record %s, want the key sealed", v)
		}
		return v
	}
	refused := func(t *testing.T, wantCode int, want []string, args ...string) {
		t.Helper()
		code, _, errOut := put(args...)
		if code == 0 || (wantCode != 0 && code != wantCode) {
			t.Fatalf("exit %d, want %d: %s", code, wantCode, errOut)
		}
		for _, w := range want {
			if !strings.Contains(errOut, w) {
				t.Errorf("stderr %q lacks %q", errOut, w)
			}
		}
	}

	for _, tc := range []struct {
		name string
		code int
		args []string
		want []string
	}{
		{"no recipient, no router key", exitUsage, []string{"web.example.com", certFile, keyFile},
			[]string{"no router has published its certificate recipient at /berth/v1/acme/cert-recipient", "start a router with --router-key-file", "or pass --router-key-file"}},
		{"missing router key", exitUsage, []string{"--router-key-file", missing, "web.example.com", certFile, keyFile},
			[]string{"--router-key-file", "missing.key"}},
		{"not a key", exitUsage, []string{"--router-key-file", certFile, "web.example.com", certFile, keyFile},
			[]string{"--router-key-file", "want 32 bytes"}},
		{"key of another certificate", 0, []string{"--router-key-file", routerKey, "web.example.com", certFile, otherFile},
			[]string{"cert.pem and " + otherFile}},
	} {
		t.Run(tc.name, func(t *testing.T) { refused(t, tc.code, tc.want, tc.args...) })
	}
	if resp, _ := cli.Get(t.Context(), rec); len(resp.Kvs) != 0 {
		t.Fatalf("refused puts stored %s", resp.Kvs[0].Value)
	}

	// No recipient published: the router key (here by its earlier flag
	// name) gives it.
	key, _ := seal.ReadKeyFile(routerKey)
	mine, _ := seal.RecipientFromKey(key)
	if code, out, errOut := put("--acme-key-file", routerKey, "web.example.com", certFile, keyFile); code != 0 || !strings.Contains(out, "sealed to the routers' recipient "+mine.Fingerprint()) {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	stored()
	if err := opens(routerKey); err != nil {
		t.Errorf("the stored key does not open with the routers' key: %v", err)
	}

	// A router with the key has published its recipient: no key needed.
	cli.Delete(t.Context(), rec)
	if _, _, err := registry.PublishCertRecipient(t.Context(), cli, k, mine); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := put("web.example.com", certFile, keyFile); code != 0 || !strings.Contains(out, mine.Fingerprint()) {
		t.Fatalf("without a router key: exit %d: %s%s", code, out, errOut)
	}
	stored()
	if err := opens(routerKey); err != nil {
		t.Errorf("the key sealed to the published recipient does not open with the routers' key: %v", err)
	}
	if err := opens(strangerKey); err == nil {
		t.Error("the stored key opens with another router key")
	}
	if code, _, errOut := put("--router-key-file", routerKey, "web.example.com", certFile, keyFile); code != 0 {
		t.Errorf("with the matching router key: exit %d: %s", code, errOut)
	}

	// Pinned: the published recipient's fingerprint is accepted, any
	// other refused with nothing written.
	if code, _, errOut := put("--recipient", mine.Fingerprint(), "web.example.com", certFile, keyFile); code != 0 {
		t.Errorf("pinned to the published recipient: exit %d: %s", code, errOut)
	}
	before, _ := cli.Get(t.Context(), rec)
	refused(t, exitUsage, []string{"--recipient sha256:0000000000000000", "the routers' recipient is " + mine.Fingerprint(), "nothing stored"},
		"--recipient", "sha256:0000000000000000", "web.example.com", certFile, keyFile)
	if after, _ := cli.Get(t.Context(), rec); after.Kvs[0].ModRevision != before.Kvs[0].ModRevision {
		t.Error("the put refused by --recipient wrote the record")
	}

	// A router key that is not the routers': refused, nothing written.
	stranger, _ := seal.RecipientFromKey(func() []byte { b, _ := seal.ReadKeyFile(strangerKey); return b }())
	before, _ = cli.Get(t.Context(), rec)
	refused(t, exitUsage, []string{"--router-key-file", "is not the one the routers published at /berth/v1/acme/cert-recipient",
		stranger.Fingerprint(), mine.Fingerprint()}, "--router-key-file", strangerKey, "web.example.com", certFile, keyFile)
	if after, _ := cli.Get(t.Context(), rec); after.Kvs[0].ModRevision != before.Kvs[0].ModRevision {
		t.Error("the refused put wrote the record")
	}

	// A published value that does not read.
	cli.Put(t.Context(), k.CertRecipient(), "{}")
	refused(t, 0, []string{"does not read", "etcdctl del /berth/v1/acme/cert-recipient"}, "web.example.com", certFile, keyFile)
}

// waitServed retries f (a request) until it succeeds, for up to 10s: the
// router applies the stored certificate from its watch.
func waitServed(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for err := f(); err != nil; err = f() {
		if time.Now().After(deadline) {
			t.Fatalf("not served: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRouterCommandServesCertPut: "berth router --router-key-file", as
// systemd starts it, publishes its certificate recipient; "berth cert put"
// without any router key seals to it; an HTTPS request for the host is
// answered with the certificate from etcd. A router without the key
// (nothing at the default path) says so at start, fails that handshake
// and still routes plain HTTP.
func TestRouterCommandServesCertPut(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from backend")
	}))
	defer backend.Close()
	srv := etcdWithWebDomain(t, strings.TrimPrefix(backend.URL, "http://"))
	dir := t.TempDir()
	certPEM, keyPEM, leaf, err := etcdtest.SelfSigned("web.example.com")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)
	routerKey := filepath.Join(dir, "router.key")
	os.WriteFile(routerKey, []byte(strings.Repeat("c3", 32)+"\n"), 0o600)
	t.Setenv("BERTH_ROUTER_KEY_FILE", "")
	t.Setenv("BERTH_ROUTER_ACME_KEY_FILE", "")
	pool := x509.NewCertPool()
	pool.AddCert(leaf)

	start := func(t *testing.T, extra ...string) (plain, secure int, stderr *acmetest.SyncBuffer) {
		t.Helper()
		var files []*os.File
		var ports []int
		for range 2 {
			l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			f, _ := l.File()
			files, ports = append(files, f), append(ports, l.Addr().(*net.TCPAddr).Port)
		}
		notify, msgs := notifySocket(t)
		self, _ := os.Executable()
		args := append([]string{"router", "--etcd-endpoints", srv.Endpoint, "--admin", "", "--log-level", "warn"}, extra...)
		cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, self}, args...)...)
		cmd.Env = append(os.Environ(), "BERTH_TEST_AS_MAIN=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=http:https", "NOTIFY_SOCKET="+notify,
			"BERTH_ROUTER_KEY_FILE=", "BERTH_ROUTER_ACME_KEY_FILE=")
		cmd.ExtraFiles = files
		stderr = &acmetest.SyncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitMsg(t, msgs, "READY=1")
		return ports[0], ports[1], stderr
	}
	get := func(url string, port int) (string, error) {
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
			},
		}}
		resp, err := hc.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}

	t.Run("with the key", func(t *testing.T) {
		_, secure, _ := start(t, "--router-key-file", routerKey)
		cli := etcdtest.Client(t, srv.Endpoint)
		k, _ := registry.NewKeys("")
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := registry.GetCertRecipient(t.Context(), cli, k); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("the router did not publish its certificate recipient: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		code, out, errOut := berth(t, "cert", "put", "--etcd-endpoints", srv.Endpoint, "web.example.com", certFile, keyFile)
		if code != 0 {
			t.Fatalf("cert put without a router key: exit %d: %s", code, errOut)
		}
		key, _ := seal.ReadKeyFile(routerKey)
		if r, _ := seal.RecipientFromKey(key); !strings.Contains(out, r.Fingerprint()) {
			t.Errorf("cert put says %q, want the recipient derived from the router's key (%s)", out, r.Fingerprint())
		}
		waitServed(t, func() error { _, err := get("https://web.example.com/", secure); return err })
		if body, err := get("https://web.example.com/", secure); err != nil || body != "hello from backend" {
			t.Fatalf("https: %q, %v; want the backend over the certificate from etcd", body, err)
		}
	})
	t.Run("without a key", func(t *testing.T) {
		if _, err := os.Stat(defaultRouterKeyFile); err == nil {
			t.Skipf("%s exists here", defaultRouterKeyFile)
		}
		plain, secure, stderr := start(t)
		if _, err := get("https://web.example.com/", secure); err == nil {
			t.Fatal("https answered by a router without the routers' key")
		}
		if body, err := get("http://web.example.com/", plain); err != nil || body != "hello from backend" {
			t.Errorf("http: %q, %v; want the backend", body, err)
		}
		for _, want := range []string{"no router key", "certificate in etcd not served"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
	})
}
