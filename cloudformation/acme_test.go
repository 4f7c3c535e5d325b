package cloudformation

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	ign "github.com/coreos/ignition/v2/config/v3_4/types"

	"github.com/berthproject/berth/units"
)

const (
	letsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"
	leStaging   = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

var reHexKey = regexp.MustCompile(`^[0-9a-f]{64}$`)

// The first run makes the ACME storage key and the routers' settings as
// SecureString parameters, without the key on any command line; a second
// run with -a staging -e keeps the key and rewrites the settings; a third
// writes nothing.
func TestCreateStackACME(t *testing.T) {
	a := newAccount(t)
	out, calls := a.create("", threeFlags...)
	prefix := "/berth/" + stackName + "/acme/"
	params := a.ssmParams("eu-west-1")
	key, env := params[prefix+"acme.key"], params[prefix+"acme.env"]
	if key.Type != "SecureString" || env.Type != "SecureString" {
		t.Fatalf("acme parameters: key %q, env %q; want SecureStrings", key.Type, env.Type)
	}
	if !reHexKey.MatchString(key.Value) {
		t.Errorf("acme.key %q: want 32 bytes as hex (acmestore.ReadKeyFile)", key.Value)
	}
	if want := "BERTH_ROUTER_ACME=1\nBERTH_ROUTER_ACME_CA=" + letsEncrypt + "\nBERTH_ROUTER_ACME_ROUTE53_ZONE=Z123EXAMPLE\n"; env.Value != want {
		t.Errorf("acme.env:\n%s\nwant:\n%s", env.Value, want)
	}
	mustContain(t, "output", out, "ACME settings written ("+letsEncrypt+")", "ACME storage key made and stored as "+prefix+"acme.key")
	mustContain(t, "calls", calls, "ssm put-parameter --name "+prefix+"acme.key --type SecureString --value file://")
	mustNotContain(t, "calls", calls, key.Value)
	mustNotContain(t, "output", out, key.Value)

	out, calls = a.create("", append(threeFlags, "-a", "staging", "-e", "ops@example.com")...)
	params = a.ssmParams("eu-west-1")
	if params[prefix+"acme.key"].Value != key.Value {
		t.Error("the second run replaced the ACME storage key")
	}
	mustContain(t, "acme.env", params[prefix+"acme.env"].Value, "BERTH_ROUTER_ACME_CA="+leStaging, "BERTH_ROUTER_ACME_EMAIL=ops@example.com")
	mustContain(t, "output", out, "ACME storage key kept", "ACME settings written ("+leStaging+", contact ops@example.com)", "systemctl restart berth-pki berth-router")
	mustNotContain(t, "calls", calls, "--with-decryption --name "+prefix+"acme.key", "put-parameter --name "+prefix+"acme.key")

	out, calls = a.create("", append(threeFlags, "-a", "staging", "-e", "ops@example.com")...)
	mustContain(t, "output", out, "ACME settings kept", "ACME storage key kept")
	mustNotContain(t, "calls", calls, "put-parameter")

	// A key stored by another operator's run is kept too.
	b := newAccount(t)
	b.create("", append(threeFlags, "-a", "https://acme.example.net/dir")...)
	mustContain(t, "acme.env", b.ssmParams("eu-west-1")[prefix+"acme.env"].Value, "BERTH_ROUTER_ACME_CA=https://acme.example.net/dir")
}

func TestCreateStackACMERefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"plain http CA", []string{"-a", "http://acme.example.net/dir"}, "-a takes letsencrypt, staging or an https:// ACME directory URL"},
		{"unknown CA", []string{"-a", "zerossl"}, "-a takes letsencrypt, staging"},
		{"CA with a newline", []string{"-a", "https://x\nBERTH_ROUTER_ACME_KEY_FILE=/tmp/k"}, "characters an ACME directory URL does not"},
		{"email with a space", []string{"-e", "ops @example.com"}, "-e ops @example.com is not an email address"},
		{"email with a newline", []string{"-e", "ops@example.com\nBERTH_ROUTER_ACME=0"}, "is not an email address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAccount(t)
			code, _, errOut, calls := a.run("", "create-stack.sh", append(threeFlags, tc.args...)...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tc.want)
			}
			mustNotContain(t, "calls", calls, "put-parameter", "create-change-set")
		})
	}
}

// nodeTexts returns a role's Ignition config with the placeholders filled:
// the data files decoded by path, the units and drop-ins by name.
func nodeTexts(t *testing.T, role string) (ign.Config, map[string]string) {
	t.Helper()
	cfgJSON, err := units.Ignition(role, ignitionOptions())
	if err != nil {
		t.Fatal(err)
	}
	var cfg ign.Config
	if err := json.Unmarshal([]byte(concrete.Replace(string(cfgJSON))), &cfg); err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{}
	for _, f := range cfg.Storage.Files {
		if f.Contents.Source != nil {
			texts[f.Path] = dataURL(t, *f.Contents.Source)
		}
	}
	for _, u := range cfg.Systemd.Units {
		if u.Contents != nil {
			texts[u.Name] = *u.Contents
		}
		for _, d := range u.Dropins {
			if d.Contents != nil {
				texts[u.Name+".d/"+d.Name] = *d.Contents
			}
		}
	}
	return cfg, texts
}

// Both roles fetch the ACME settings and key from SSM at boot; the router
// gets the key as a systemd credential, and nothing of ACME is in the user
// data in clear.
func TestACMEOnNodes(t *testing.T) {
	for _, role := range []string{units.RoleServer, units.RoleWorker} {
		t.Run(role, func(t *testing.T) {
			_, texts := nodeTexts(t, role)
			mustContain(t, "berth-pki.service", texts["berth-pki.service"],
				"ExecStart=/opt/bin/berth ssm-fetch --wait 10m --prefix /berth/berth-test/acme --dir /etc/berth/acme acme.env acme.key",
				"Before=etcd-member.service berth-etcd-join.service berth-agent.service berth-router.service")
			dropin := texts["berth-router.service.d/30-acme.conf"]
			mustContain(t, "router's ACME drop-in", dropin, "Requires=berth-pki.service", "After=berth-pki.service",
				"LoadCredential=acme-key:/etc/berth/acme/acme.key",
				"Environment=BERTH_ROUTER_ACME_KEY_FILE=/run/credentials/berth-router.service/acme-key",
				"EnvironmentFile=/etc/berth/acme/acme.env")
			mustNotContain(t, "router's ACME drop-in", dropin, "EnvironmentFile=-")
			mustContain(t, "berth-router.service", texts["berth-router.service"], "DynamicUser=yes")
			// The key file is read by systemd (root) only: the router sees
			// its credential copy, never the file, and no unit passes the key
			// in an environment variable.
			for name, text := range texts {
				if strings.HasPrefix(name, "/") {
					mustNotContain(t, name, text, "BERTH_ROUTER_ACME")
				}
				mustNotContain(t, name, text, "BERTH_ROUTER_ACME_KEY=")
			}
			for name := range texts {
				if name != "berth-router.service.d/30-acme.conf" && strings.Contains(texts[name], "LoadCredential=acme-key") {
					t.Errorf("%s also gets the ACME key", name)
				}
			}
		})
	}
	raw, _ := os.ReadFile(templatePath)
	mustNotContain(t, "berth.yaml", string(raw), "BERTH_ROUTER_ACME_EMAIL", "BERTH_ROUTER_ACME_CA")
}

// The rendered units and drop-ins of both roles pass systemd-analyze
// verify (with the ACME drop-in in place).
func TestNodeUnitsVerify(t *testing.T) {
	for _, role := range []string{units.RoleServer, units.RoleWorker} {
		t.Run(role, func(t *testing.T) {
			cfg, _ := nodeTexts(t, role)
			var files []units.File
			for _, u := range cfg.Systemd.Units {
				content := "[Unit]\nDescription=stub of Flatcar's own unit, for verification\n[Service]\nExecStart=/usr/bin/true\n"
				if u.Contents != nil {
					content = *u.Contents
				}
				files = append(files, units.File{Name: u.Name, Content: []byte(content)})
				for _, d := range u.Dropins {
					files = append(files, units.File{Name: u.Name + ".d/" + d.Name, Content: []byte(*d.Contents)})
				}
			}
			if err := units.Verify(context.Background(), files); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The instance roles may read the stack's ACME parameters and change only
// _acme-challenge TXT records of the stack's hosted zone.
func TestRolesACME(t *testing.T) {
	raw, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for _, r := range [][2]string{{"  ServerRole:", "  ServerInstanceProfile:"}, {"  WorkerRole:", "  WorkerInstanceProfile:"}} {
		role := s[strings.Index(s, r[0]):strings.Index(s, r[1])]
		mustContain(t, r[0], role, ":parameter/berth/${AWS::StackName}/acme/*",
			"Action: route53:ChangeResourceRecordSets",
			`Resource: {"Fn::Sub": "arn:${AWS::Partition}:route53:::hostedzone/${HostedZoneId}"}`,
			`"route53:ChangeResourceRecordSetsRecordTypes": [TXT]`,
			`"route53:ChangeResourceRecordSetsNormalizedRecordNames": ["_acme-challenge.*"]`,
			"Action: route53:ListResourceRecordSets", "Action: route53:GetChange")
		mustNotContain(t, r[0], role, "route53:*", "hostedzone/*", `"arn:aws:route53`)
	}
}
