package main

import (
	"crypto/x509"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/pki"
)

// TestUpSecure: berth up --secure serves the demo through a router that
// follows etcd as berth-reader over TLS; berth status works with the
// environment it prints, passivation and the wake work with their roles,
// berth status fails clearly without the client certificate, and a
// reader's certificate cannot scale an app.
func TestUpSecure(t *testing.T) {
	dir := t.TempDir()
	p := startUp(t, dir, "--secure")
	env := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^  export (BERTH_ETCD_[A-Z]+)=(.*)$`).FindAllStringSubmatch(p.out.String(), -1) {
		env[m[1]] = m[2]
	}
	if len(env) != 4 || !strings.HasPrefix(env["BERTH_ETCD_ENDPOINTS"], "https://127.0.0.1:") {
		t.Fatalf("printed environment %v, want endpoints (https), CA, certificate and key:\n%s", env, p.out)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	until(t, "the demo app routed", 10*time.Second, func() bool { code, _, _ := p.get(t, "/health"); return code == 200 })

	status := func() statusRow {
		t.Helper()
		code, out, errOut := berth(t, "status", "-o", "json")
		var rows []statusRow
		if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0].App != "paas-monitor" {
			t.Fatalf("berth status with the printed environment: %d %q %q", code, out, errOut)
		}
		return rows[0]
	}
	status()
	// Passivation (as berth-agent) puts the idle app to sleep; a request
	// wakes it (the router's wake, as berth-reader).
	until(t, "passivation, every instance stopped", 30*time.Second, func() bool {
		st := status()
		return st.Current == "passivated" && st.Up == 0
	})
	if code, hdr, body := p.get(t, "/status"); code != 200 || hdr.Get("X-Berth-Cold-Start") == "" {
		t.Fatalf("wake: %d %v %q", code, hdr, body)
	}

	t.Setenv("BERTH_ETCD_CERT", "")
	t.Setenv("BERTH_ETCD_KEY", "")
	code, _, errOut := berth(t, "status", "--etcd-request-timeout", "1s")
	if code == 0 || !strings.Contains(errOut, "no client certificate given") {
		t.Errorf("berth status without the client certificate: exit %d, %q; want a failure naming the missing certificate", code, errOut)
	}

	t.Setenv("BERTH_ETCD_CERT", filepath.Join(dir, "pki", etcdauth.Reader+".pem"))
	t.Setenv("BERTH_ETCD_KEY", filepath.Join(dir, "pki", etcdauth.Reader+"-key.pem"))
	code, _, errOut = berth(t, "scale", "paas-monitor", "1")
	if code == 0 || !strings.Contains(errOut, `permission denied: etcd user "berth-reader"`) || !strings.Contains(errOut, "docs/security.md") {
		t.Errorf("berth scale as berth-reader: exit %d, %q; want permission denied", code, errOut)
	}
}

// TestUpSecureDataDirStaysSecure: a data directory started with --secure
// has auth on in its etcd; starting it without --secure says so at once.
func TestUpSecureDataDirStaysSecure(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.Init(filepath.Join(dir, "pki"), "berth up CA"); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := berth(t, "up", "--data-dir", dir, "--etcd-port", "1")
	if code == 0 || !strings.Contains(errOut, "started with --secure") {
		t.Errorf("berth up without --secure on a secure data dir: exit %d, %q", code, errOut)
	}
}

// TestPKICommands: berth pki init and issue write a CA and certificates
// that verify against it, with the name as CN; bad requests are usage
// errors.
func TestPKICommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if code, _, errOut := berth(t, "pki", "init", dir); code != 0 {
		t.Fatalf("pki init: %d %s", code, errOut)
	}
	if code, out, _ := berth(t, "pki", "init", dir); code != 0 || !strings.Contains(out, "kept") {
		t.Errorf("second pki init: %d %q, want the CA kept", code, out)
	}
	tests := []struct {
		args  []string
		usage x509.ExtKeyUsage
	}{
		{[]string{"--name", "etcd-1", "--role", "server", "--ip", "10.0.1.5", "--dns", "etcd-1.internal"}, x509.ExtKeyUsageServerAuth},
		{[]string{"--name", "etcd-1-peer", "--role", "peer", "--ip", "10.0.1.5"}, x509.ExtKeyUsageClientAuth},
		{[]string{"--name", etcdauth.Agent, "--role", "client"}, x509.ExtKeyUsageClientAuth},
	}
	ca, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		name := tc.args[1]
		t.Run(name, func(t *testing.T) {
			if code, _, errOut := berth(t, append([]string{"pki", "issue", dir}, tc.args...)...); code != 0 {
				t.Fatalf("pki issue: %d %s", code, errOut)
			}
			cert, err := ca.Verify(ca.Paths(name).Cert, tc.usage)
			if err != nil || cert.Subject.CommonName != name {
				t.Errorf("verify: %v, CN %q; want a valid certificate with CN %q", err, cert.Subject.CommonName, name)
			}
		})
	}
	for _, args := range [][]string{{"pki", "issue", dir, "--name", "x"}, {"pki", "issue", dir, "--name", "x", "--role", "admin"}, {"pki", "init"}} {
		if code, _, _ := berth(t, args...); code != exitUsage {
			t.Errorf("berth %v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// TestEtcdAuthInit: berth etcd-auth init as root finds berth's roles in
// place on a secure etcd and only reports auth enabled; on an etcd set up
// before berth-dns existed it adds that role and its user.
func TestEtcdAuthInit(t *testing.T) {
	s, p := etcdtest.Secure(t)
	root := p.Client(etcdauth.RootUser)
	initAuth := func() (int, string, string) {
		return berth(t, "etcd-auth", "init", "--etcd-endpoints", s.Endpoint, "--etcd-cacert", p.CACert(),
			"--etcd-cert", root.Cert, "--etcd-key", root.Key)
	}
	if code, out, errOut := initAuth(); code != 0 || strings.TrimSpace(out) != "auth: enabled already" {
		t.Errorf("etcd-auth init: %d %q %q, want only auth enabled already", code, out, errOut)
	}
	rc := etcdtest.SecureClient(t, s, p, etcdauth.RootUser)
	if _, err := rc.UserDelete(t.Context(), etcdauth.DNS); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.RoleDelete(t.Context(), etcdauth.DNS); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := initAuth()
	for _, want := range []string{"role berth-dns: created", "role berth-dns: granted read /berth/v1/*", "user berth-dns: created", "user berth-dns: granted role berth-dns"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("etcd-auth init without berth-dns: %d %q %q, want %q", code, out, errOut, want)
		}
	}
}
