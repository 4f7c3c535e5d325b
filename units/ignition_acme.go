package units

import (
	"strings"

	ign "github.com/coreos/ignition/v2/config/v3_4/types"
)

// ACMEDir is where a node keeps the routers' ACME settings fetched from SSM
// Parameter Store (root's, 0600): acme.env (BERTH_ROUTER_ACME=1, the CA,
// the contact, the DNS-01 zone) and acme.key, the key sealing the ACME
// storage in etcd (docs/security.md).
const ACMEDir = "/etc/berth/acme"

// acmeFiles are the parameters under PKIPrefix/acme/ (bin/create-stack.sh
// writes them).
var acmeFiles = []string{"acme.env", "acme.key"}

// acmeCredential is the name of the ACME key among the router's systemd
// credentials.
const acmeCredential = "acme-key"

// acmeFetch is berth-pki.service's command that installs the ACME files.
func acmeFetch(o IgnitionOptions) string {
	return o.Berth + " ssm-fetch --wait 10m --prefix " + o.PKIPrefix + "/acme --dir " + ACMEDir + " " + strings.Join(acmeFiles, " ")
}

// acmeDropin turns ACME on for berth-router.service: the settings from
// acme.env, the key through LoadCredential (readable by the router's
// dynamic user only, never in its environment).
func acmeDropin() (File, error) {
	u := pkiDropin()
	u.add("Service", "LoadCredential", acmeCredential+":"+ACMEDir+"/acme.key")
	u.add("Service", "Environment", "BERTH_ROUTER_ACME_KEY_FILE=/run/credentials/berth-router.service/"+acmeCredential)
	u.add("Service", "EnvironmentFile", ACMEDir+"/acme.env")
	return u.file("30-acme.conf")
}

// addACME adds the router's ACME drop-in to cfg.
func addACME(cfg *ign.Config) error {
	d, err := acmeDropin()
	if err != nil {
		return err
	}
	for i := range cfg.Systemd.Units {
		if u := &cfg.Systemd.Units[i]; u.Name == "berth-router.service" {
			c := string(d.Content)
			u.Dropins = append(u.Dropins, ign.Dropin{Name: d.Name, Contents: &c})
		}
	}
	return nil
}
