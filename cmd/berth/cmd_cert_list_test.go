package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/berthproject/berth/internal/acmestore"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

// berth cert list shows the certificates from berth cert put and those
// the routers keep sealed in the ACME storage; with the storage key, the
// ACME ones' expiry.
func TestCertList(t *testing.T) {
	srv, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	ctx := t.Context()
	certPEM, keyPEM, _, err := etcdtest.SelfSigned("web.example.com")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "router.key")
	os.WriteFile(keyFile, []byte(strings.Repeat("09", acmestore.KeySize)), 0o600)
	os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)
	if code, _, errOut := berth(t, "cert", "put", "--router-key-file", keyFile, "--etcd-endpoints", srv.Endpoint,
		"web.example.com", filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")); code != 0 {
		t.Fatalf("cert put: exit %d: %s", code, errOut)
	}
	// A record written before keys were sealed.
	oldPEM, oldKey, _, _ := etcdtest.SelfSigned("old.example.com")
	oldRec, _ := k.Cert("old.example.com")
	b, _ := json.Marshal(registry.Cert{Cert: string(oldPEM), Key: string(oldKey)})
	if _, err := cli.Put(ctx, oldRec, string(b)); err != nil {
		t.Fatal(err)
	}
	acmePEM, _, _, err := etcdtest.SelfSigned("*.wild.test")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(acmePEM)
	leaf, _ := x509.ParseCertificate(block.Bytes)
	key := bytes.Repeat([]byte{9}, acmestore.KeySize)
	log, _ := test.NewNullLogger()
	store, err := acmestore.New(cli, k.ACMEPrefix(), key, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	acmeDir := "certificates/acme-v02.api.letsencrypt.org-directory/wildcard_.wild.test/"
	for name, v := range map[string][]byte{"wildcard_.wild.test.crt": acmePEM, "wildcard_.wild.test.key": []byte("k"), "wildcard_.wild.test.json": []byte("{}")} {
		if err := store.Store(ctx, acmeDir+name, v); err != nil {
			t.Fatal(err)
		}
	}
	store.Store(ctx, "acme/acme-v02.api.letsencrypt.org-directory/users/x/x.json", []byte("{}"))

	code, out, errOut := berth(t, "cert", "list", "--etcd-endpoints", srv.Endpoint)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "HOST") || !strings.HasPrefix(lines[1], "*.wild.test") ||
		!strings.HasPrefix(lines[2], "old.example.com") || !strings.HasPrefix(lines[3], "web.example.com") {
		t.Fatalf("table:\n%s", out)
	}
	mustHave := func(line string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(line, w) {
				t.Errorf("line %q lacks %q", line, w)
			}
		}
	}
	mustHave(lines[1], "acme", "sealed", "acme-v02.api.letsencrypt.org-directory", "sealed (--router-key-file)")
	mustHave(lines[2], "etcd", "clear key (berth cert put again)", "(in ")
	mustHave(lines[3], "etcd", "sealed", "(in ")
	if strings.Contains(lines[3], "clear") {
		t.Errorf("the sealed key listed as clear: %q", lines[3])
	}

	code, out, errOut = berth(t, "cert", "list", "-o", "json", "--acme-key-file", keyFile, "--etcd-endpoints", srv.Endpoint)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rows []certRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Host != "*.wild.test" || rows[0].NotAfter == nil || !rows[0].NotAfter.Equal(leaf.NotAfter.Truncate(time.Second)) {
		t.Errorf("json rows %+v, want the ACME certificate's NotAfter %v", rows, leaf.NotAfter)
	}
	if len(rows) == 3 && (rows[1].Key != "clear" || rows[2].Key != "sealed" || rows[0].Key != "sealed") {
		t.Errorf("json keys %q %q %q, want sealed, clear, sealed", rows[0].Key, rows[1].Key, rows[2].Key)
	}

	os.WriteFile(keyFile, []byte(strings.Repeat("0a", acmestore.KeySize)), 0o600)
	if code, _, errOut := berth(t, "cert", "list", "--acme-key-file", keyFile, "--etcd-endpoints", srv.Endpoint); code == 0 || !strings.Contains(errOut, "is --router-key-file the routers' key?") {
		t.Errorf("wrong key: exit %d, %q", code, errOut)
	}
	os.WriteFile(keyFile, []byte("short"), 0o600)
	if code, _, errOut := berth(t, "cert", "list", "--acme-key-file", keyFile, "--etcd-endpoints", srv.Endpoint); code != 2 || !strings.Contains(errOut, "--router-key-file") {
		t.Errorf("bad key file: exit %d, %q; want 2 naming the flag", code, errOut)
	}
}
