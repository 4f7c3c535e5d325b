package units

import (
	"fmt"
	"regexp"
	"strings"

	ign "github.com/coreos/ignition/v2/config/v3_4/types"

	"github.com/berthproject/berth/internal/etcdauth"
)

// Where a node keeps etcd's TLS files (docs/security.md).
const (
	// PKIDir holds ca.pem and the clients' certificates and keys (root's, 0600).
	PKIDir = "/etc/berth/pki"
	// EtcdPKIDir holds the etcd member's files, owned by etcd's user; it is
	// Flatcar's ETCD_SSL_DIR, which etcd-member mounts at /etc/ssl/certs in
	// its container.
	EtcdPKIDir = "/etc/berth/pki-etcd"
)

// The files under the PKIPrefix in SSM Parameter Store: NODE/pki/ for every
// node, NODE/pki-server/ for the servers only (bin/create-stack.sh writes them).
// secrets.key is the cluster's sealed-secrets identity (internal/secret's
// DefaultIdentityFile), root's with mode 0600 like the keys.
var (
	nodePKIFiles   = []string{"ca.pem:0644", "berth-agent.pem", "berth-agent-key.pem", "berth-reader.pem", "berth-reader-key.pem", "berth-dns.pem", "berth-dns-key.pem", "secrets.key"}
	rootPKIFiles   = []string{"root.pem", "root-key.pem"}
	memberPKIFiles = []string{"etcd-server.pem", "etcd-server-key.pem", "etcd-peer.pem", "etcd-peer-key.pem"}
)

// rePKIPrefix is what a PKIPrefix may hold: a parameter path, with Fn::Sub
// placeholders.
var rePKIPrefix = regexp.MustCompile(`^(/([A-Za-z0-9_.-]|\$\{[A-Za-z0-9:]+\})+)+$`)

// pkiEnv is berth.env's TLS part: the agent's certificate.
func pkiEnv() []string {
	return []string{"BERTH_ETCD_CACERT=" + PKIDir + "/ca.pem", "BERTH_ETCD_CERT=" + PKIDir + "/berth-agent.pem",
		"BERTH_ETCD_KEY=" + PKIDir + "/berth-agent-key.pem"}
}

// pkiUnit renders berth-pki.service: a oneshot that fetches the node's files
// from SSM with the instance role before etcd and the berth units start.
func pkiUnit(role string, o IgnitionOptions) (File, error) {
	if !rePKIPrefix.MatchString(o.PKIPrefix) {
		return File{}, fmt.Errorf("pki prefix %q: want a parameter path such as /berth/STACK", o.PKIPrefix)
	}
	fetch := func(sub, dir string, files []string) string {
		return o.Berth + " ssm-fetch --wait 10m --prefix " + o.PKIPrefix + "/" + sub + " --dir " + dir + " " + strings.Join(files, " ")
	}
	u := &unitFile{}
	desc := "berth: fetch etcd's certificates from SSM Parameter Store"
	if o.ACME {
		desc = "berth: fetch etcd's certificates and the routers' ACME key from SSM Parameter Store"
	}
	u.add("Unit", "Description", desc)
	u.add("Unit", "Documentation", "https://github.com/berthproject/berth/blob/main/docs/security.md")
	u.add("Unit", "Wants", "network-online.target")
	u.add("Unit", "After", "network-online.target")
	u.add("Unit", "Before", "etcd-member.service berth-etcd-join.service berth-agent.service berth-router.service berth-dnsd.service berth-passivate.service")
	u.add("Service", "Type", "oneshot")
	u.add("Service", "RemainAfterExit", "yes")
	u.add("Service", "ExecStart", fetch("pki", PKIDir, nodePKIFiles))
	if o.ACME {
		u.add("Service", "ExecStart", acmeFetch(o))
	}
	if role == RoleServer {
		u.add("Service", "ExecStart", fetch("pki-server", PKIDir, rootPKIFiles))
		u.add("Service", "ExecStart", fetch("pki-server", EtcdPKIDir, memberPKIFiles))
		u.add("Service", "ExecStart", "/usr/bin/cp "+PKIDir+"/ca.pem "+EtcdPKIDir+"/ca.pem")
		u.add("Service", "ExecStart", "/usr/bin/chown -R etcd:etcd "+EtcdPKIDir)
	}
	u.add("Service", "TimeoutStartSec", "15min")
	u.add("Install", "WantedBy", "multi-user.target")
	return u.file("berth-pki.service")
}

// pkiDropin makes a berth unit wait for berth-pki.service.
func pkiDropin() *unitFile {
	u := &unitFile{}
	u.add("Unit", "Requires", "berth-pki.service")
	u.add("Unit", "After", "berth-pki.service")
	return u
}

// unitUsers are the etcd users of the DynamicUser units: the router's,
// which writes its access records, wakes and ACME storage, and dnsd's,
// which only reads (docs/security.md).
var unitUsers = map[string]string{"berth-router.service": etcdauth.Reader, "berth-dnsd.service": etcdauth.DNS}

// clientDropin gives a DynamicUser unit user's certificate as systemd
// credentials; its environment file, read after berth.env's, overrides
// the agent's certificate. The drop-in and the file are named after the
// role: 20-etcd-reader.conf and /etc/berth/reader-UNIT.env for
// berth-reader, 20-etcd-dns.conf and /etc/berth/dns-UNIT.env for berth-dns.
func clientDropin(unitName, user string) (dropin File, envFile, env string, err error) {
	short := strings.TrimPrefix(user, "berth-")
	u := pkiDropin()
	u.add("Service", "LoadCredential", "etcd-ca:"+PKIDir+"/ca.pem")
	u.add("Service", "LoadCredential", "etcd-cert:"+PKIDir+"/"+user+".pem")
	u.add("Service", "LoadCredential", "etcd-key:"+PKIDir+"/"+user+"-key.pem")
	envFile = "/etc/berth/" + short + "-" + strings.TrimSuffix(unitName, ".service") + ".env"
	u.add("Service", "EnvironmentFile", envFile)
	creds := "/run/credentials/" + unitName + "/"
	env = "BERTH_ETCD_CACERT=" + creds + "etcd-ca\nBERTH_ETCD_CERT=" + creds + "etcd-cert\nBERTH_ETCD_KEY=" + creds + "etcd-key\n"
	dropin, err = u.file("20-etcd-" + short + ".conf")
	return dropin, envFile, env, err
}

// authUnit renders berth-etcd-auth.service (servers): once etcd answers,
// "berth etcd-auth init" as root creates the roles and turns auth on; it is
// idempotent, so every server runs it at every boot.
func authUnit(o IgnitionOptions) (File, error) {
	u := &unitFile{}
	u.add("Unit", "Description", "berth: etcd's roles and users, and auth on (idempotent)")
	u.add("Unit", "Documentation", "https://github.com/berthproject/berth/blob/main/docs/security.md")
	u.add("Unit", "Requires", "etcd-member.service berth-pki.service")
	u.add("Unit", "After", "etcd-member.service berth-pki.service")
	u.add("Unit", "StartLimitIntervalSec", "0")
	u.add("Service", "Type", "oneshot")
	u.add("Service", "RemainAfterExit", "yes")
	u.add("Service", "ExecStart", o.Berth+" etcd-auth init --etcd-endpoints https://127.0.0.1:2379 --etcd-cacert "+PKIDir+
		"/ca.pem --etcd-cert "+PKIDir+"/root.pem --etcd-key "+PKIDir+"/root-key.pem")
	u.add("Service", "Restart", "on-failure")
	u.add("Service", "RestartSec", "10")
	u.add("Install", "WantedBy", "multi-user.target")
	return u.file("berth-etcd-auth.service")
}

// addPKI adds the TLS parts of a node's Ignition config.
func addPKI(cfg *ign.Config, role string, o IgnitionOptions, addFile func(string, int, string) *ign.File) error {
	pki, err := pkiUnit(role, o)
	if err != nil {
		return err
	}
	c := string(pki.Content)
	cfg.Systemd.Units = append(cfg.Systemd.Units, ign.Unit{Name: pki.Name, Contents: &c, Enabled: boolPtr(true)})
	waitFor, err := pkiDropin().file("20-berth-pki.conf")
	if err != nil {
		return err
	}
	for i := range cfg.Systemd.Units {
		u := &cfg.Systemd.Units[i]
		switch u.Name {
		case "berth-agent.service", "berth-passivate.service", "berth-etcd-join.service":
			w := string(waitFor.Content)
			u.Dropins = append(u.Dropins, ign.Dropin{Name: waitFor.Name, Contents: &w})
		case "etcd-member.service":
			e := pkiDropin()
			e.add("Service", "Environment", "ETCD_SSL_DIR="+EtcdPKIDir)
			d, err := e.file("20-berth-pki.conf")
			if err != nil {
				return err
			}
			dc := string(d.Content)
			u.Dropins = append(u.Dropins, ign.Dropin{Name: d.Name, Contents: &dc})
		case "berth-router.service", "berth-dnsd.service":
			d, envFile, env, err := clientDropin(u.Name, unitUsers[u.Name])
			if err != nil {
				return err
			}
			dc := string(d.Content)
			u.Dropins = append(u.Dropins, ign.Dropin{Name: d.Name, Contents: &dc})
			addFile(envFile, 0o644, textURL(env))
		}
	}
	if o.ACME {
		if err := addACME(cfg); err != nil {
			return err
		}
	}
	if role == RoleServer {
		auth, err := authUnit(o)
		if err != nil {
			return err
		}
		a := string(auth.Content)
		cfg.Systemd.Units = append(cfg.Systemd.Units, ign.Unit{Name: auth.Name, Contents: &a, Enabled: boolPtr(true)})
	}
	return nil
}
