package cloudformation

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ssmParams reads the fake's SSM parameters of a region.
func (a *account) ssmParams(region string) map[string]struct{ Type, Value, KeyID string } {
	a.t.Helper()
	params := map[string]struct{ Type, Value, KeyID string }{}
	raw, err := os.ReadFile(filepath.Join(a.state, "ssm", region+".json"))
	if err != nil {
		return params
	}
	if err := json.Unmarshal(raw, &params); err != nil {
		a.t.Fatal(err)
	}
	return params
}

// The node-side files of etcd's TLS, by SSM parameter under /berth/STACK/.
var nodeFiles = []string{
	"pki/ca.pem", "pki/berth-agent.pem", "pki/berth-agent-key.pem", "pki/berth-reader.pem", "pki/berth-reader-key.pem", "pki/berth-dns.pem", "pki/berth-dns-key.pem", "pki/secrets.key",
	"pki-server/etcd-server.pem", "pki-server/etcd-server-key.pem", "pki-server/etcd-peer.pem", "pki-server/etcd-peer-key.pem",
	"pki-server/root.pem", "pki-server/root-key.pem",
}

// etcdMemberIPs are the members' stable addresses in berth.yaml.
var etcdMemberIPs = []string{"10.0.1.11", "10.0.2.11", "10.0.1.12", "10.0.2.12", "10.0.1.13"}

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		t.Fatalf("%s: no PEM block", file)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The first run makes the CA and the certificates in ~/.config/berth/STACK/pki
// and stores the nodes' files as SecureString parameters; the CA key and the
// operator's certificate stay on the machine.
func TestCreateStackPKI(t *testing.T) {
	a := newAccount(t)
	out, calls := a.create("", threeFlags...)
	dir := filepath.Join(a.home, ".config", "berth", stackName, "pki")
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v, want a 0700 directory", dir, err)
	}
	mustContain(t, "output", out, "issued etcd-server etcd-peer berth-reader berth-dns berth-agent berth-operator root in "+dir,
		"SSM parameters under /berth/"+stackName+"/: 14 of 14 written (SecureString)",
		"made the secrets key "+dir+"/secrets.key", "berth secret init --recipient-identity "+dir+"/secrets.key")
	mustContain(t, "calls", calls, "go build -o ", "ssm put-parameter --overwrite --name /berth/"+stackName+"/pki/ca.pem --type SecureString --value file://"+dir+"/ca.pem",
		"ssm put-parameter --overwrite --name /berth/"+stackName+"/pki/secrets.key --type SecureString --value file://"+dir+"/secrets.key")
	mustNotContain(t, "calls", calls, "BEGIN", "ca-key.pem", "berth-operator", "AGE-SECRET-KEY")
	if st, err := os.Stat(filepath.Join(dir, "secrets.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("secrets.key: %v, want a 0600 file", err)
	}

	params := a.ssmParams("eu-west-1")
	for name := range params {
		if strings.HasPrefix(name, "/berth/"+stackName+"/acme/") {
			delete(params, name) // TestCreateStackACME
		}
	}
	if len(params) != len(nodeFiles) {
		t.Errorf("got %d parameters, want %d", len(params), len(nodeFiles))
	}
	for _, f := range nodeFiles {
		p, ok := params["/berth/"+stackName+"/"+f]
		local, err := os.ReadFile(filepath.Join(dir, filepath.Base(f)))
		if err != nil {
			t.Fatal(err)
		}
		if !ok || p.Type != "SecureString" || p.KeyID != "alias/aws/ssm" || p.Value != string(local) {
			t.Errorf("parameter %s: present %v, type %q, key %q; want a SecureString with the file's content", f, ok, p.Type, p.KeyID)
		}
	}
	for _, f := range []string{"ca-key.pem", "berth-operator.pem", "berth-operator-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not kept locally: %v", f, err)
		}
	}

	ca := readCert(t, filepath.Join(dir, "ca.pem"))
	for _, name := range []string{"etcd-server", "etcd-peer"} {
		c := readCert(t, filepath.Join(dir, name+".pem"))
		if err := c.CheckSignatureFrom(ca); err != nil {
			t.Errorf("%s: not signed by the CA: %v", name, err)
		}
		var ips []string
		for _, ip := range c.IPAddresses {
			ips = append(ips, ip.String())
		}
		for _, want := range append([]string{"127.0.0.1"}, etcdMemberIPs...) {
			if !slices.Contains(ips, want) {
				t.Errorf("%s: IP SANs %v lack %s", name, ips, want)
			}
		}
		if !slices.Contains(c.DNSNames, "localhost") {
			t.Errorf("%s: DNS SANs %v lack localhost", name, c.DNSNames)
		}
	}
	for _, user := range []string{"berth-reader", "berth-dns", "berth-agent", "berth-operator", "root"} {
		if c := readCert(t, filepath.Join(dir, user+".pem")); c.Subject.CommonName != user {
			t.Errorf("%s.pem: CN %q", user, c.Subject.CommonName)
		}
	}
}

// A second run keeps the CA and the certificates and writes no parameter;
// a certificate removed locally (rotation) is issued again and only its
// files are written.
func TestCreateStackPKITwice(t *testing.T) {
	a := newAccount(t)
	a.create("", threeFlags...)
	dir := filepath.Join(a.home, ".config", "berth", stackName, "pki")
	before := map[string][]byte{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		before[e.Name()], _ = os.ReadFile(filepath.Join(dir, e.Name()))
	}
	out, calls := a.create("", threeFlags...)
	mustContain(t, "output", out, "CA and certificates in "+dir+" are kept", "0 of 14 written")
	mustNotContain(t, "calls", calls, "put-parameter")
	for name, b := range before {
		if now, _ := os.ReadFile(filepath.Join(dir, name)); string(now) != string(b) {
			t.Errorf("%s changed on the second run", name)
		}
	}

	for _, f := range []string{"berth-agent.pem", "berth-agent-key.pem"} {
		os.Remove(filepath.Join(dir, f))
	}
	out, calls = a.create("", threeFlags...)
	mustContain(t, "output", out, "issued berth-agent in", "2 of 14 written")
	if n := strings.Count(calls, "put-parameter"); n != 2 {
		t.Errorf("%d put-parameter calls, want 2:\n%s", n, calls)
	}
	if got := a.ssmParams("eu-west-1")["/berth/"+stackName+"/pki/berth-agent.pem"].Value; got == string(before["berth-agent.pem"]) || got == "" {
		t.Error("the reissued berth-agent.pem is not in SSM")
	}
	if now, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(now) != string(before["ca.pem"]) {
		t.Error("the CA changed")
	}
}

// The script's member addresses are the template's.
func TestCreateStackMemberIPsMatchTemplate(t *testing.T) {
	script, err := os.ReadFile("../bin/create-stack.sh")
	if err != nil {
		t.Fatal(err)
	}
	want := "etcd_ips=(" + strings.Join(etcdMemberIPs, " ") + ")"
	mustContain(t, "create-stack.sh", string(script), want)
	tmpl, err := os.ReadFile("berth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i, ip := range etcdMemberIPs {
		if net.ParseIP(ip) == nil || !strings.Contains(string(tmpl), "etcd"+string(rune('1'+i))+"=https://"+ip+":2380") {
			t.Errorf("berth.yaml lacks member etcd%d at https://%s:2380", i+1, ip)
		}
	}
}
