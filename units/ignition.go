package units

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	ign "github.com/coreos/ignition/v2/config/v3_4/types"
)

// Node roles for Ignition configs.
const (
	RoleServer = "server" // runs an etcd member and the platform
	RoleWorker = "worker" // runs the platform against the servers' etcd
)

// IgnitionOptions parameterize a node's Ignition config. Values may hold
// CloudFormation Fn::Sub placeholders such as "${BerthURL}": they are
// written verbatim (never base64-encoded) so that the template fills them.
type IgnitionOptions struct {
	Options
	BerthURL      string // where nodes download the berth binary: https://, s3:// (the instance role's credentials) or data: (required)
	BerthHash     string // Ignition's verification of the binary, "sha512-<hex>" or "sha256-<hex>"; empty: not verified
	EtcdEndpoints string // BERTH_ETCD_ENDPOINTS for the platform units
	Stack         string // stack name (servers: member interface tags)
	Region        string // AWS region (servers)
	EtcdCluster   string // etcd initial cluster, "etcd1=http://10.0.1.11:2380,..." (servers)
	RouterAdmin   string // BERTH_ROUTER_ADMIN (the load balancer's health check), default 127.0.0.1:9080
	// PKIPrefix is the SSM Parameter Store path of the node's etcd TLS files
	// (PKIPrefix/pki/ for all nodes, PKIPrefix/pki-server/ for servers), e.g.
	// "/berth/${AWS::StackName}". Set, etcd serves TLS with client
	// certificates and auth, and berth-pki.service fetches the files at boot;
	// empty (the default), etcd is plain http (EtcdCluster's URLs say which).
	PKIPrefix string
	// ACME, with PKIPrefix, turns the routers' ACME on: berth-pki.service
	// also fetches PKIPrefix/acme/ (acme.env, acme.key) into ACMEDir, and
	// berth-router.service reads acme.env and gets the key through
	// LoadCredential (default false: no ACME).
	ACME bool
}

// Ignition renders the Ignition config (spec 3.4, as Flatcar reads it) of a
// node: the berth binary from BerthURL (checked against BerthHash when
// set), /etc/berth/berth.env, the platform
// units enabled (router and dnsd sockets, agent, passivation timer) and, for
// servers, the etcd member with stable membership (berth-etcd-join). With
// PKIPrefix, etcd's TLS: berth-pki.service, berth-reader's credentials for
// the router and berth-dns's for dnsd, and for servers berth-etcd-auth.service.
func Ignition(role string, o IgnitionOptions) ([]byte, error) {
	if role != RoleServer && role != RoleWorker {
		return nil, fmt.Errorf("role must be %s or %s, got %q", RoleServer, RoleWorker, role)
	}
	if o.BerthURL == "" {
		return nil, fmt.Errorf("ignition needs the berth binary's URL")
	}
	o.Options = o.Options.withDefaults()
	if o.RouterAdmin == "" {
		o.RouterAdmin = "127.0.0.1:9080"
	}
	cfg := ign.Config{Ignition: ign.Ignition{Version: "3.4.0"}}
	exe := 0o755
	conf := 0o644
	addFile := func(path string, mode int, source string) *ign.File {
		src := source
		cfg.Storage.Files = append(cfg.Storage.Files, ign.File{
			Node:          ign.Node{Path: path, Overwrite: boolPtr(true)},
			FileEmbedded1: ign.FileEmbedded1{Mode: &mode, Contents: ign.Resource{Source: &src}},
		})
		return &cfg.Storage.Files[len(cfg.Storage.Files)-1]
	}
	if berth := addFile(o.Berth, exe, o.BerthURL); o.BerthHash != "" {
		hash := o.BerthHash
		berth.Contents.Verification.Hash = &hash
	}
	env := []string{"BERTH_ETCD_ENDPOINTS=" + o.EtcdEndpoints, "BERTH_ROUTER_ADMIN=" + o.RouterAdmin, "BERTH_DRIVER=systemd",
		"BERTH_METADATA=role=" + string(role)}
	if role == RoleServer {
		env = append(env, "BERTH_SCHEDULER=true") // berth fleet's scheduler candidates: the etcd servers
	}
	if o.PKIPrefix != "" {
		env = append(env, pkiEnv()...)
	}
	addFile("/etc/berth/berth.env", conf, textURL(strings.Join(env, "\n")+"\n"))
	platform, err := Platform(o.Options)
	if err != nil {
		return nil, err
	}
	enable := map[string]bool{"berth-router.socket": true, "berth-router-https.socket": true, "berth-router.service": true, "berth-dnsd.socket": true,
		"berth-dnsd.service": true, "berth-agent.service": true, "berth-passivate.timer": true}
	for _, f := range platform {
		c := string(f.Content)
		u := ign.Unit{Name: f.Name, Contents: &c}
		if enable[f.Name] {
			u.Enabled = boolPtr(true)
		}
		cfg.Systemd.Units = append(cfg.Systemd.Units, u)
	}
	if role == RoleServer {
		script, err := templates.ReadFile("templates/node/berth-etcd-join.sh")
		if err != nil {
			return nil, err
		}
		addFile("/opt/bin/berth-etcd-join", exe, "data:;base64,"+base64.StdEncoding.EncodeToString(script))
		nodeEnv := []string{"BERTH_STACK=" + o.Stack, "BERTH_REGION=" + o.Region, "BERTH_ETCD_INITIAL_CLUSTER=" + o.EtcdCluster}
		if o.PKIPrefix != "" {
			nodeEnv = append(nodeEnv, "BERTH_ETCD_TLS=true")
		}
		addFile("/etc/berth/node.env", conf, textURL(strings.Join(nodeEnv, "\n")+"\n"))
		join, err := templates.ReadFile("templates/node/berth-etcd-join.service")
		if err != nil {
			return nil, err
		}
		dropin, err := templates.ReadFile("templates/node/etcd-member-berth.conf")
		if err != nil {
			return nil, err
		}
		js, ds := string(join), string(dropin)
		cfg.Systemd.Units = append(cfg.Systemd.Units,
			ign.Unit{Name: "berth-etcd-join.service", Contents: &js, Enabled: boolPtr(true)},
			ign.Unit{Name: "etcd-member.service", Enabled: boolPtr(true), Dropins: []ign.Dropin{{Name: "10-berth.conf", Contents: &ds}}})
	}
	if o.ACME && o.PKIPrefix == "" {
		return nil, fmt.Errorf("acme on the nodes needs a pki prefix: its key comes from SSM Parameter Store")
	}
	if o.PKIPrefix != "" {
		if strings.Contains(o.EtcdEndpoints, "http://") || strings.Contains(o.EtcdCluster, "http://") {
			return nil, fmt.Errorf("with a pki prefix etcd serves TLS: the endpoints and the cluster want https:// URLs")
		}
		if err := addPKI(&cfg, role, o, addFile); err != nil {
			return nil, err
		}
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// textURL is an RFC 2397 data URL of plain text. Characters of Fn::Sub
// placeholders ("${Name}") are left as they are so the template can fill
// them; everything else that a URL cannot hold is percent-encoded.
func textURL(s string) string {
	var b strings.Builder
	b.WriteString("data:,")
	for _, part := range splitPlaceholders(s) {
		if strings.HasPrefix(part, "${") {
			b.WriteString(part)
			continue
		}
		b.WriteString(strings.ReplaceAll(url.PathEscape(part), "+", "%2B"))
	}
	return b.String()
}

// splitPlaceholders splits s into text and "${...}" placeholders.
func splitPlaceholders(s string) []string {
	var out []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return append(out, s)
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return append(out, s)
		}
		out = append(out, s[:i], s[i:i+j+1])
		s = s[i+j+1:]
	}
}

func boolPtr(b bool) *bool { return &b }
