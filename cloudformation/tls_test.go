package cloudformation

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	ign "github.com/coreos/ignition/v2/config/v3_4/types"

	"github.com/berthproject/berth/units"
)

// reHTTPEtcd is a plain-http etcd URL (client or peer port), or a shell
// variable standing for one.
var reHTTPEtcd = regexp.MustCompile(`http://[^\s"',]*:23(79|80)`)

// dataURL decodes an Ignition data: source.
func dataURL(t *testing.T, src string) string {
	t.Helper()
	switch {
	case strings.HasPrefix(src, "data:;base64,"):
		b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, "data:;base64,"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	case strings.HasPrefix(src, "data:,"):
		s, err := url.PathUnescape(strings.TrimPrefix(src, "data:,"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return ""
}

// The template and both nodes' Ignition configs (files decoded, units and
// drop-ins) name no http:// etcd URL.
func TestNoPlainHTTPEtcd(t *testing.T) {
	raw, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	if m := reHTTPEtcd.FindAllString(string(raw), -1); len(m) > 0 {
		t.Errorf("berth.yaml has http:// etcd URLs: %v", m)
	}
	for _, role := range []string{units.RoleServer, units.RoleWorker} {
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
					texts[u.Name+"/"+d.Name] = *d.Contents
				}
			}
		}
		for name, text := range texts {
			if m := reHTTPEtcd.FindAllString(text, -1); len(m) > 0 {
				t.Errorf("%s: %s has http:// etcd URLs: %v", role, name, m)
			}
		}
		env := texts["/etc/berth/berth.env"]
		mustContain(t, role+" berth.env", env, "BERTH_ETCD_ENDPOINTS=https://10.0.1.11:2379,", "BERTH_ETCD_CACERT=/etc/berth/pki/ca.pem",
			"BERTH_ETCD_CERT=/etc/berth/pki/berth-agent.pem", "BERTH_ETCD_KEY=/etc/berth/pki/berth-agent-key.pem")
		mustContain(t, role+" berth-pki.service", texts["berth-pki.service"],
			"ExecStart=/opt/bin/berth ssm-fetch --wait 10m --prefix /berth/berth-test/pki --dir /etc/berth/pki ca.pem:0644 berth-agent.pem berth-agent-key.pem berth-reader.pem berth-reader-key.pem berth-dns.pem berth-dns-key.pem secrets.key",
			"Before=etcd-member.service berth-etcd-join.service berth-agent.service")
		// The router as berth-reader, dnsd as berth-dns (read-only).
		for _, c := range []struct{ unit, short, user string }{{"berth-router", "reader", "berth-reader"}, {"berth-dnsd", "dns", "berth-dns"}} {
			u := c.unit
			mustContain(t, role+" "+u+" drop-in", texts[u+".service/20-etcd-"+c.short+".conf"], "Requires=berth-pki.service",
				"LoadCredential=etcd-cert:/etc/berth/pki/"+c.user+".pem", "LoadCredential=etcd-key:/etc/berth/pki/"+c.user+"-key.pem",
				"EnvironmentFile=/etc/berth/"+c.short+"-"+u+".env")
			mustContain(t, role+" "+c.short+" env", texts["/etc/berth/"+c.short+"-"+u+".env"], "BERTH_ETCD_CERT=/run/credentials/"+u+".service/etcd-cert")
		}
		mustNotContain(t, role+" berth-dnsd drop-in", texts["berth-dnsd.service/20-etcd-dns.conf"], "berth-reader")
		if role == units.RoleWorker {
			mustNotContain(t, "worker units", strings.Join(mapValues(texts), "\n"), "pki-server", "root-key.pem", "etcd-auth init")
			continue
		}
		mustContain(t, "server berth-pki.service", texts["berth-pki.service"], "--prefix /berth/berth-test/pki-server --dir /etc/berth/pki root.pem root-key.pem",
			"--dir /etc/berth/pki-etcd etcd-server.pem etcd-server-key.pem etcd-peer.pem etcd-peer-key.pem", "chown -R etcd:etcd /etc/berth/pki-etcd")
		mustContain(t, "server etcd-member drop-in", texts["etcd-member.service/20-berth-pki.conf"], "Requires=berth-pki.service", "ETCD_SSL_DIR=/etc/berth/pki-etcd")
		mustContain(t, "server berth-etcd-auth.service", texts["berth-etcd-auth.service"], "After=etcd-member.service",
			"etcd-auth init --etcd-endpoints https://127.0.0.1:2379 --etcd-cacert /etc/berth/pki/ca.pem --etcd-cert /etc/berth/pki/root.pem")
		mustContain(t, "node.env", texts["/etc/berth/node.env"], "BERTH_ETCD_TLS=true", "etcd1=https://10.0.1.11:2380")
		mustContain(t, "berth-etcd-join", texts["/opt/bin/berth-etcd-join"], "--cacert /pki/ca.pem --cert /pki/root.pem --key /pki/root-key.pem",
			`--peer-urls "$scheme://$ip:2380"`, "ETCD_CLIENT_CERT_AUTH=true", "ETCD_PEER_CLIENT_CERT_AUTH=true", "ETCD_CERT_FILE=$SSL/etcd-server.pem")
	}
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// The instance roles read their stack's parameters only: the workers not
// the servers' pki-server/.
func TestRolesReadOnlyTheirParameters(t *testing.T) {
	raw, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	server := s[strings.Index(s, "  ServerRole:"):strings.Index(s, "  ServerInstanceProfile:")]
	worker := s[strings.Index(s, "  WorkerRole:"):strings.Index(s, "  WorkerInstanceProfile:")]
	mustContain(t, "ServerRole", server, "ssm:GetParameter", ":parameter/berth/${AWS::StackName}/pki/*", ":parameter/berth/${AWS::StackName}/pki-server/*",
		"kms:Decrypt", `"kms:ViaService": {"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}`)
	mustContain(t, "WorkerRole", worker, "ssm:GetParameter", ":parameter/berth/${AWS::StackName}/pki/*", "kms:Decrypt")
	mustNotContain(t, "WorkerRole", worker, "pki-server")
	for _, r := range []string{server, worker} {
		mustNotContain(t, "roles", r, `parameter/*"`, `parameter/berth/*"`)
		// ECR pulls (pullSecret aws:ecr) only when the stack asks for them.
		mustContain(t, "roles", r, "ManagedPolicyArns:\n        Fn::If:\n          - EcrPull\n          - [{\"Fn::Sub\": \"arn:${AWS::Partition}:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly\"}]\n          - Ref: AWS::NoValue")
	}
	mustContain(t, "template", s, "  EcrPull:\n    Type: String\n    Default: \"false\"", "  EcrPull:\n    Fn::Equals: [Ref: EcrPull, \"true\"]")
}
