package units

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	ign "github.com/coreos/ignition/v2/config/v3_4/types"
)

func TestIgnitionPKIOptions(t *testing.T) {
	base := IgnitionOptions{BerthURL: "https://example.com/berth", EtcdEndpoints: "https://10.0.1.11:2379",
		EtcdCluster: "etcd1=https://10.0.1.11:2380", Stack: "s", Region: "eu-west-1"}
	tests := []struct {
		name    string
		prefix  string
		mutate  func(*IgnitionOptions)
		wantErr string
	}{
		{name: "stack path", prefix: "/berth/s"},
		{name: "placeholder", prefix: "/berth/${AWS::StackName}"},
		{name: "relative", prefix: "berth/s", wantErr: "want a parameter path"},
		{name: "space", prefix: "/berth/s x", wantErr: "want a parameter path"},
		{name: "newline", prefix: "/berth/s\nExecStart=/bin/sh", wantErr: "want a parameter path"},
		{name: "percent", prefix: "/berth/%n", wantErr: "want a parameter path"},
		{name: "http endpoints", prefix: "/berth/s", mutate: func(o *IgnitionOptions) { o.EtcdEndpoints = "http://10.0.1.11:2379" }, wantErr: "https://"},
		{name: "http cluster", prefix: "/berth/s", mutate: func(o *IgnitionOptions) { o.EtcdCluster = "etcd1=http://10.0.1.11:2380" }, wantErr: "https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			o.PKIPrefix = tt.prefix
			if tt.mutate != nil {
				tt.mutate(&o)
			}
			for _, role := range []string{RoleServer, RoleWorker} {
				cfg, err := Ignition(role, o)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("%s: got error %v, want one with %q", role, err, tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", role, err)
				}
				if !strings.Contains(string(cfg), "berth-pki.service") {
					t.Errorf("%s: no berth-pki.service", role)
				}
				if got := strings.Contains(string(cfg), "berth-etcd-auth.service"); got != (role == RoleServer) {
					t.Errorf("%s: berth-etcd-auth.service present %v", role, got)
				}
			}
		})
	}
	// Without a prefix, nothing of the above.
	cfg, err := Ignition(RoleServer, IgnitionOptions{BerthURL: "https://example.com/berth", EtcdEndpoints: "http://127.0.0.1:2379"})
	if err != nil || strings.Contains(string(cfg), "berth-pki") || strings.Contains(string(cfg), "BERTH_ETCD_CACERT") {
		t.Errorf("without a prefix: err %v, TLS parts present", err)
	}
}

// TestIgnitionACMEOption: the ACME drop-in and fetch come with ACME only,
// and ACME needs the pki prefix (its key comes from SSM).
func TestIgnitionACMEOption(t *testing.T) {
	o := IgnitionOptions{BerthURL: "https://example.com/berth", EtcdEndpoints: "https://10.0.1.11:2379",
		EtcdCluster: "etcd1=https://10.0.1.11:2380", PKIPrefix: "/berth/s"}
	for _, acme := range []bool{false, true} {
		o.ACME = acme
		for _, role := range []string{RoleServer, RoleWorker} {
			cfg, err := Ignition(role, o)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"30-acme.conf", "--prefix /berth/s/acme --dir /etc/berth/acme acme.env acme.key", "LoadCredential=acme-key:"} {
				if got := strings.Contains(string(cfg), want); got != acme {
					t.Errorf("%s, ACME %v: %q present %v", role, acme, want, got)
				}
			}
		}
	}
	o.PKIPrefix = ""
	if _, err := Ignition(RoleWorker, o); err == nil || !strings.Contains(err.Error(), "needs a pki prefix") {
		t.Errorf("ACME without a pki prefix: %v", err)
	}
}

// TestIgnitionPKIUnitUsers: the router gets berth-reader's certificate,
// dnsd berth-dns's (read-only), each through its own drop-in and
// environment file; berth-pki.service fetches both.
func TestIgnitionPKIUnitUsers(t *testing.T) {
	o := IgnitionOptions{BerthURL: "https://example.com/berth", EtcdEndpoints: "https://10.0.1.11:2379",
		EtcdCluster: "etcd1=https://10.0.1.11:2380", PKIPrefix: "/berth/s"}
	for _, role := range []string{RoleServer, RoleWorker} {
		raw, err := Ignition(role, o)
		if err != nil {
			t.Fatal(err)
		}
		var cfg ign.Config
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		texts := map[string]string{}
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
		for _, f := range cfg.Storage.Files {
			if f.Contents.Source != nil {
				text, err := url.PathUnescape(strings.TrimPrefix(*f.Contents.Source, "data:,"))
				if err != nil {
					t.Fatal(err)
				}
				texts[f.Path] = text
			}
		}
		if fetch := texts["berth-pki.service"]; !strings.Contains(fetch, " berth-reader.pem berth-reader-key.pem berth-dns.pem berth-dns-key.pem ") {
			t.Errorf("%s: berth-pki.service fetches no berth-dns certificate:\n%s", role, fetch)
		}
		for _, tc := range []struct{ unit, dropin, env, user, not string }{
			{"berth-router", "20-etcd-reader.conf", "/etc/berth/reader-berth-router.env", "berth-reader", "berth-dns"},
			{"berth-dnsd", "20-etcd-dns.conf", "/etc/berth/dns-berth-dnsd.env", "berth-dns", "berth-reader"},
		} {
			d := texts[tc.unit+".service/"+tc.dropin]
			for _, want := range []string{"Requires=berth-pki.service", "LoadCredential=etcd-cert:/etc/berth/pki/" + tc.user + ".pem",
				"LoadCredential=etcd-key:/etc/berth/pki/" + tc.user + "-key.pem", "EnvironmentFile=" + tc.env} {
				if !strings.Contains(d, want) {
					t.Errorf("%s: %s drop-in %s lacks %q:\n%s", role, tc.unit, tc.dropin, want, d)
				}
			}
			if strings.Contains(d, tc.not) {
				t.Errorf("%s: %s drop-in names %s:\n%s", role, tc.unit, tc.not, d)
			}
			if env := texts[tc.env]; !strings.Contains(env, "BERTH_ETCD_CERT=/run/credentials/"+tc.unit+".service/etcd-cert") {
				t.Errorf("%s: %s: %q, want the credential's path", role, tc.env, env)
			}
		}
	}
}
