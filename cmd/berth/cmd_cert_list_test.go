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
	if err := registry.PutCert(ctx, cli, k, "web.example.com", certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	acmePEM, _, _, err := etcdtest.SelfSigned("*.wild.test")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(acmePEM)
	leaf, _ := x509.ParseCertificate(b.Bytes)
	key := bytes.Repeat([]byte{9}, acmestore.KeySize)
	log, _ := test.NewNullLogger()
	store, err := acmestore.New(cli, k.ACMEPrefix(), key, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dir := "certificates/acme-v02.api.letsencrypt.org-directory/wildcard_.wild.test/"
	for name, v := range map[string][]byte{"wildcard_.wild.test.crt": acmePEM, "wildcard_.wild.test.key": []byte("k"), "wildcard_.wild.test.json": []byte("{}")} {
		if err := store.Store(ctx, dir+name, v); err != nil {
			t.Fatal(err)
		}
	}
	store.Store(ctx, "acme/acme-v02.api.letsencrypt.org-directory/users/x/x.json", []byte("{}"))

	code, out, errOut := berth(t, "cert", "list", "--etcd-endpoints", srv.Endpoint)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "HOST") || !strings.HasPrefix(lines[1], "*.wild.test") || !strings.HasPrefix(lines[2], "web.example.com") {
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
	mustHave(lines[1], "acme", "acme-v02.api.letsencrypt.org-directory", "sealed (--acme-key-file)")
	mustHave(lines[2], "etcd", "(in ")

	keyFile := filepath.Join(t.TempDir(), "acme.key")
	os.WriteFile(keyFile, []byte(strings.Repeat("09", acmestore.KeySize)), 0o600)
	code, out, errOut = berth(t, "cert", "list", "-o", "json", "--acme-key-file", keyFile, "--etcd-endpoints", srv.Endpoint)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rows []certRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Host != "*.wild.test" || rows[0].NotAfter == nil || !rows[0].NotAfter.Equal(leaf.NotAfter.Truncate(time.Second)) {
		t.Errorf("json rows %+v, want the ACME certificate's NotAfter %v", rows, leaf.NotAfter)
	}

	os.WriteFile(keyFile, []byte(strings.Repeat("0a", acmestore.KeySize)), 0o600)
	if code, _, errOut := berth(t, "cert", "list", "--acme-key-file", keyFile, "--etcd-endpoints", srv.Endpoint); code == 0 || !strings.Contains(errOut, "is --acme-key-file the routers' key?") {
		t.Errorf("wrong key: exit %d, %q", code, errOut)
	}
	os.WriteFile(keyFile, []byte("short"), 0o600)
	if code, _, errOut := berth(t, "cert", "list", "--acme-key-file", keyFile, "--etcd-endpoints", srv.Endpoint); code != 2 || !strings.Contains(errOut, "--acme-key-file") {
		t.Errorf("bad key file: exit %d, %q; want 2 naming the flag", code, errOut)
	}
}
