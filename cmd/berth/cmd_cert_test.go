package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
