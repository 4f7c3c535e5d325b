package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestRoundTrip: a CA, a certificate per role that verifies against it for
// its usage, the CN naming the etcd user, keys 0600, and Init on an
// existing CA keeps it.
func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ca, err := Init(dir, "berth CA")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CAKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v %v, want 0600", f, st.Mode().Perm(), err)
		}
	}
	again, err := Init(dir, "other")
	if !errors.Is(err, ErrExists) || !again.Cert.Equal(ca.Cert) {
		t.Errorf("second init: %v, want ErrExists and the same CA", err)
	}
	tests := []struct {
		name  string
		role  Role
		usage x509.ExtKeyUsage
		ok    bool
	}{
		{"etcd-1", RoleServer, x509.ExtKeyUsageServerAuth, true},
		{"etcd-1-peer", RolePeer, x509.ExtKeyUsageClientAuth, true},
		{"berth-reader", RoleClient, x509.ExtKeyUsageClientAuth, true},
		{"berth-agent", RoleClient, x509.ExtKeyUsageServerAuth, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ca.Issue(Request{Name: tc.name, Role: tc.role, IPs: []net.IP{net.IPv4(10, 0, 1, 5)}, DNS: []string{"etcd.internal"}})
			if err != nil {
				t.Fatal(err)
			}
			cert, err := ca.Verify(out.Cert, tc.usage)
			if (err == nil) != tc.ok {
				t.Fatalf("verify for %v: %v, want ok=%v", tc.usage, err, tc.ok)
			}
			if cert.Subject.CommonName != tc.name {
				t.Errorf("CN %q, want %q", cert.Subject.CommonName, tc.name)
			}
			if st, _ := os.Stat(out.Key); st.Mode().Perm() != 0o600 {
				t.Errorf("key mode %v, want 0600", st.Mode().Perm())
			}
			if _, err := tls.LoadX509KeyPair(out.Cert, out.Key); err != nil {
				t.Errorf("key pair: %v", err)
			}
		})
	}
	other, _ := Init(t.TempDir(), "other CA")
	if _, err := other.Verify(ca.Paths("etcd-1").Cert, x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("a certificate verifies against another CA")
	}
}

func TestIssueRefusesBadRequests(t *testing.T) {
	ca, err := Init(t.TempDir(), "berth CA")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Request{{Name: "../x", Role: RoleClient}, {Name: "ca", Role: RoleClient}, {Name: "x", Role: "admin"}} {
		if _, err := ca.Issue(r); err == nil {
			t.Errorf("issue %+v: no error", r)
		}
	}
}
