package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ign "github.com/coreos/ignition/v2/config/v3_4/types"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/pki"
	"github.com/berthproject/berth/units"
)

// The secure cluster (StartSecureFleet) runs etcd as docs/security.md
// says and the nodes of cloudformation/berth.yaml get it: TLS with client
// certificates on the client and peer ports, certificates from
// internal/pki in /etc/berth/pki and /etc/berth/pki-etcd, and etcd auth
// with berth's roles, turned on by each server's berth-etcd-auth.service.
// What the platform units get (berth.env's TLS lines, the router's and
// dnsd's drop-ins and environment files, berth-etcd-auth.service) is taken from
// the Ignition config "berth render --ignition server --pki-prefix" writes.
// Only berth-pki.service is a stand-in: it fetches from SSM Parameter
// Store on AWS; here the harness has put the files in place.

// StartSecureFleet starts the fleet cluster (StartFleet) on a TLS + auth
// etcd: the agents connect as berth-agent, routers as berth-reader, dnsd
// as berth-dns; Operator runs the CLI as berth-operator from the hub.
func StartSecureFleet(t *testing.T) *Cluster {
	t.Helper()
	return start(t, &Cluster{t: t, root: t, fleet: true, secure: true}, nil)
}

// clientUsers are the etcd users with a client certificate: berth's roles
// and root (berth-etcd-auth.service, member changes).
var clientUsers = []string{etcdauth.Reader, etcdauth.DNS, etcdauth.Agent, etcdauth.Operator, etcdauth.RootUser}

// makePKI creates the cluster's CA and certificates in dir, as
// bin/create-stack.sh does: one server and one peer certificate naming
// every member's address and 127.0.0.1, a client certificate per user.
func makePKI(t testing.TB, dir string, nodes []*Node) *pki.CA {
	t.Helper()
	ca, err := pki.Init(dir, "berth test cluster CA")
	if err != nil {
		t.Fatal(err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	for _, n := range nodes {
		ips = append(ips, net.ParseIP(n.IP))
	}
	reqs := []pki.Request{{Name: "etcd-server", Role: pki.RoleServer, IPs: ips}, {Name: "etcd-peer", Role: pki.RolePeer, IPs: ips}}
	for _, u := range clientUsers {
		reqs = append(reqs, pki.Request{Name: u, Role: pki.RoleClient})
	}
	for _, r := range reqs {
		if _, err := ca.Issue(r); err != nil {
			t.Fatal(err)
		}
	}
	return ca
}

// installPKI copies a server's files into the node's /etc/berth (the
// layout of docs/security.md): pki/ (0700) with ca.pem and the clients'
// certificates the servers get, pki-etcd/ (0700) with the member's.
func installPKI(t testing.TB, ca *pki.CA, etc string) {
	t.Helper()
	cp := func(name, dir string, mode os.FileMode) {
		b, err := os.ReadFile(filepath.Join(ca.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(etc, dir), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, dir, name), b, mode); err != nil {
			t.Fatal(err)
		}
	}
	cp(pki.CACertFile, "pki", 0o644)
	for _, u := range []string{etcdauth.Agent, etcdauth.Reader, etcdauth.DNS, etcdauth.RootUser} { // no berth-operator: it stays with the operators
		cp(u+".pem", "pki", 0o600)
		cp(u+"-key.pem", "pki", 0o600)
	}
	for _, f := range []string{"ca.pem", "etcd-server.pem", "etcd-server-key.pem", "etcd-peer.pem", "etcd-peer-key.pem"} {
		cp(f, "pki-etcd", 0o600)
	}
}

// etcdTLSFlags are the member's TLS flags (berth-etcd-join's etcd.env on
// the stack's servers).
const etcdTLSFlags = "--client-cert-auth --trusted-ca-file /etc/berth/pki-etcd/ca.pem " +
	"--cert-file /etc/berth/pki-etcd/etcd-server.pem --key-file /etc/berth/pki-etcd/etcd-server-key.pem " +
	"--peer-client-cert-auth --peer-trusted-ca-file /etc/berth/pki-etcd/ca.pem " +
	"--peer-cert-file /etc/berth/pki-etcd/etcd-peer.pem --peer-key-file /etc/berth/pki-etcd/etcd-peer-key.pem"

// pkiStandIn replaces berth-pki.service, which the rendered drop-ins
// require: on the stack it fetches the files from SSM; here they are
// bind-mounted, and it checks that they are there.
const pkiStandIn = `[Unit]
Description=berth test cluster: etcd's certificates in place (the harness wrote /etc/berth/pki as berth ssm-fetch would)
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/test -s /etc/berth/pki/ca.pem -a -s /etc/berth/pki/berth-reader-key.pem -a -s /etc/berth/pki/berth-dns-key.pem -a -s /etc/berth/pki/berth-agent-key.pem
`

// secureNode is what a secure server gets from its rendered Ignition
// config.
type secureNode struct {
	env   []string          // berth.env's TLS lines (BERTH_ETCD_CACERT, _CERT, _KEY)
	etc   map[string]string // files of /etc/berth by name (the router's and dnsd's environment files)
	units map[string]string // unit files and drop-ins ("UNIT.d/NAME") by path under the units directory
}

// renderSecure renders a server's Ignition config with a PKI prefix, as
// cloudformation/berth.yaml does, and takes from it the TLS settings of
// the platform units.
func renderSecure(opts units.Options, initialCluster string) (*secureNode, error) {
	b, err := units.Ignition(units.RoleServer, units.IgnitionOptions{Options: opts, BerthURL: "https://berth.invalid/berth",
		EtcdEndpoints: "https://127.0.0.1:2379", EtcdCluster: initialCluster, Stack: "berth-test", Region: "local", PKIPrefix: "/berth/berth-test"})
	if err != nil {
		return nil, err
	}
	var cfg ign.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, err
	}
	s := &secureNode{etc: map[string]string{}, units: map[string]string{}}
	for _, f := range cfg.Storage.Files {
		src := ""
		if f.Contents.Source != nil {
			src = *f.Contents.Source
		}
		text, ok := strings.CutPrefix(src, "data:,")
		if !ok || !strings.HasPrefix(f.Path, "/etc/berth/") {
			continue
		}
		if text, err = url.PathUnescape(text); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
		switch name := strings.TrimPrefix(f.Path, "/etc/berth/"); {
		case name == "berth.env":
			sc := bufio.NewScanner(strings.NewReader(text))
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "BERTH_ETCD_") && !strings.HasPrefix(sc.Text(), "BERTH_ETCD_ENDPOINTS=") {
					s.env = append(s.env, sc.Text())
				}
			}
		case strings.HasPrefix(name, "reader-"), strings.HasPrefix(name, "dns-"):
			s.etc[name] = text
		}
	}
	for _, u := range cfg.Systemd.Units {
		if u.Name == "berth-etcd-auth.service" && u.Contents != nil {
			s.units[u.Name] = *u.Contents
		}
		if !slices.Contains(units.PlatformUnits, u.Name) {
			continue
		}
		for _, d := range u.Dropins {
			if d.Contents != nil {
				s.units[u.Name+".d/"+d.Name] = *d.Contents
			}
		}
	}
	// What the test relies on: the agent's certificate in berth.env, the
	// router's drop-in (berth-reader) and dnsd's (berth-dns), the auth unit.
	for _, want := range []string{"berth-etcd-auth.service", "berth-router.service.d/20-etcd-reader.conf", "berth-dnsd.service.d/20-etcd-dns.conf"} {
		if s.units[want] == "" {
			return nil, fmt.Errorf("the rendered secure server has no %s", want)
		}
	}
	if len(s.env) != 3 || len(s.etc) != 2 {
		return nil, fmt.Errorf("the rendered secure server's berth.env TLS lines %q, router and dnsd environment files %d: want 3 and 2", s.env, len(s.etc))
	}
	return s, nil
}

// writeSecure writes a node's secure files: its PKI, the router's and
// dnsd's environment files, the auth unit, the drop-ins (under dropins/, copied
// into /etc/systemd/system at every boot) and the berth-pki stand-in.
func (c *Cluster) writeSecure(n *Node, s *secureNode) {
	installPKI(c.t, c.ca, n.dirs.etc)
	write := func(path, content string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			c.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	for name, content := range s.etc {
		write(filepath.Join(n.dirs.etc, name), content)
	}
	for path, content := range s.units {
		if strings.Contains(path, ".d/") {
			path = filepath.Join("dropins", path)
		}
		write(filepath.Join(n.dirs.units, path), content)
	}
	write(filepath.Join(n.dirs.units, "berth-pki.service"), pkiStandIn)
}

// linkSecure links the auth unit and the stand-in and installs the
// drop-ins (the container's /etc is volatile: at every boot).
func (c *Cluster) linkSecure(n *Node) {
	n.Exec(c.t, "systemctl", "link", "/run/berth-units/berth-pki.service", "/run/berth-units/berth-etcd-auth.service")
	n.Exec(c.t, "sh", "-c", "cp -r /run/berth-units/dropins/. /etc/systemd/system/ && systemctl daemon-reload")
}

// startAuth starts berth-etcd-auth.service on the nodes at once, as their
// boot does, and waits until it has succeeded on each.
func (c *Cluster) startAuth(nodes ...*Node) {
	for _, n := range nodes {
		n.Exec(c.t, "systemctl", "start", "--no-block", "berth-etcd-auth.service")
	}
	for _, n := range nodes {
		c.waitFor(n.Name+" berth-etcd-auth.service", 60*time.Second, func() bool {
			out, _ := n.Try("systemctl", "is-active", "berth-etcd-auth.service")
			return strings.TrimSpace(out) == "active"
		})
	}
}

// nodeBerth is the argv of berth run on a node as its administrator would:
// with berth.env's settings (in the secure cluster the agent's
// certificate, which may read all of /berth).
func (c *Cluster) nodeBerth(args ...string) []string {
	if !c.secure {
		return append([]string{"/opt/bin/berth"}, args...)
	}
	return append([]string{"sh", "-c", `set -a; . /etc/berth/berth.env; exec /opt/bin/berth "$@"`, "berth"}, args...)
}

// Endpoints are the client URLs of the nodes' etcd members.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, n := range c.Nodes {
		eps = append(eps, c.scheme()+"://"+n.IP+":2379")
	}
	return eps
}

func (c *Cluster) scheme() string {
	if c.secure {
		return "https"
	}
	return "http"
}

// Operator runs the berth CLI in the hub namespace as an operator's
// machine would: against every member, in the secure cluster with the
// berth-operator certificate (which no node holds).
func (c *Cluster) Operator(args ...string) (string, error) {
	return c.CLIAs(etcdauth.Operator, args...)
}

// CLIAs runs the berth CLI in the hub namespace against every member, in
// the secure cluster with user's client certificate.
func (c *Cluster) CLIAs(user string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", Hub, c.berth}, args...)...)
	cmd.Env = append(os.Environ(), "BERTH_ETCD_ENDPOINTS="+strings.Join(c.Endpoints(), ","))
	if c.secure {
		f := c.ca.Paths(user)
		cmd.Env = append(cmd.Env, "BERTH_ETCD_CACERT="+filepath.Join(c.ca.Dir, pki.CACertFile), "BERTH_ETCD_CERT="+f.Cert, "BERTH_ETCD_KEY="+f.Key)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
