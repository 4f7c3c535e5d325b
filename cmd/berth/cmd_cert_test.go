package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/seal"
)

// TestCertPut: berth cert put seals the private key with the routers'
// key, refuses without one (naming the flag and the fix) and refuses a
// key that is not the certificate's; the key never reaches etcd in clear.
func TestCertPut(t *testing.T) {
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
	missing := filepath.Join(dir, "missing.key")
	put := func(args ...string) (int, string, string) {
		t.Helper()
		return berth(t, append([]string{"cert", "put", "--etcd-endpoints", srv.Endpoint}, args...)...)
	}

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no router key", []string{"--router-key-file", missing, "web.example.com", certFile, keyFile},
			[]string{"--router-key-file", "seals the private key", "/etc/berth/acme/acme.key"}},
		{"not a key", []string{"--router-key-file", certFile, "web.example.com", certFile, keyFile},
			[]string{"--router-key-file", "want 32 bytes"}},
		{"key of another certificate", []string{"--router-key-file", routerKey, "web.example.com", certFile, otherFile},
			[]string{"cert.pem and " + otherFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := put(tc.args...)
			if code == 0 {
				t.Fatal("stored")
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
		})
	}
	if _, err := os.Stat(defaultRouterKeyFile); os.IsNotExist(err) && os.Getenv("BERTH_ROUTER_KEY_FILE") == "" && os.Getenv("BERTH_ROUTER_ACME_KEY_FILE") == "" {
		if code, _, errOut := put("web.example.com", certFile, keyFile); code != exitUsage || !strings.Contains(errOut, "--router-key-file") {
			t.Errorf("no key at the default path: exit %d, %q; want the usage code naming --router-key-file", code, errOut)
		}
	}
	rec, _ := k.Cert("web.example.com")
	if resp, _ := cli.Get(t.Context(), rec); len(resp.Kvs) != 0 {
		t.Fatalf("refused puts stored %s", resp.Kvs[0].Value)
	}

	// The earlier flag name still works.
	if code, out, errOut := put("--acme-key-file", routerKey, "web.example.com", certFile, keyFile); code != 0 || !strings.Contains(out, "sealed") {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	resp, err := cli.Get(t.Context(), rec)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %v", rec, err)
	}
	if v := string(resp.Kvs[0].Value); strings.Contains(v, "PRIVATE KEY") || !strings.Contains(v, `"keySealed"`) {
		t.Fatalf("record %s, want the key sealed", v)
	}
	log, _ := test.NewNullLogger()
	snap, err := registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log).Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := seal.ReadKeyFile(routerKey)
	s, _ := seal.New(key)
	if _, err := snap.Certs["web.example.com"].Open(s); err != nil {
		t.Errorf("the stored key does not open with the routers' key: %v", err)
	}
}

// lockedBuffer is a bytes.Buffer a child process's stderr can write to
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRouterCommandServesCertPut: "berth cert put" then "berth router
// --router-key-file" with the same key, as systemd starts it: an HTTPS
// request for the host is answered with the certificate from etcd. A
// router without the key (nothing at the default path) says so at start,
// fails that handshake and still routes plain HTTP.
func TestRouterCommandServesCertPut(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from backend")
	}))
	defer backend.Close()
	srv := etcdWithWebInstance(t, strings.TrimPrefix(backend.URL, "http://"))
	k, _ := registry.NewKeys("")
	dk, _ := k.Domain("web.example.com")
	if _, err := etcdtest.Client(t, srv.Endpoint).Put(t.Context(), dk, `{"app":"web"}`); err != nil {
		t.Fatal(err)
	}
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
	if code, _, errOut := berth(t, "cert", "put", "--etcd-endpoints", srv.Endpoint, "--router-key-file", routerKey,
		"web.example.com", certFile, keyFile); code != 0 {
		t.Fatalf("cert put: exit %d: %s", code, errOut)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)

	start := func(t *testing.T, extra ...string) (plain, secure int, stderr *lockedBuffer) {
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
		stderr = &lockedBuffer{}
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
