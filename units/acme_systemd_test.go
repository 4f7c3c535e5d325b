package units

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ign "github.com/coreos/ignition/v2/config/v3_4/types"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/acmetest"
	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/systemdtest"
)

// TestACMERouterUnitOnSystemd runs berth-router.service with the drop-ins
// a stack node's Ignition config gives it (20-etcd-reader.conf,
// 30-acme.conf) on a real systemd, with the files berth-pki.service would
// have fetched from SSM in place (a stub berth-pki.service stands for the
// fetch, tested in internal/ssmfetch): the router, a dynamic user with the
// ACME key as a credential and etcd's reader role, gets a certificate from
// Pebble at the first HTTPS request and serves the app over it.
func TestACMERouterUnitOnSystemd(t *testing.T) {
	s, p := etcdtest.Secure(t)
	free := func() *net.TCPAddr {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr)
	}
	httpAddr, tlsAddr, adminAddr := free(), free(), free()
	pebble := acmetest.StartPebble(t, httpAddr.Port, tlsAddr.Port)

	cfgJSON, err := Ignition(RoleWorker, IgnitionOptions{BerthURL: "https://example.com/berth", EtcdEndpoints: s.Endpoint,
		PKIPrefix: "/berth/s", ACME: true})
	if err != nil {
		t.Fatal(err)
	}
	var cfg ign.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(path, content string, mode os.FileMode) {
		t.Helper()
		os.MkdirAll(filepath.Dir(path), 0o700)
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	read := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	units, dropins, etc := filepath.Join(dir, "units"), filepath.Join(dir, "dropins"), filepath.Join(dir, "etc-berth")
	// /etc/berth as Ignition makes it (0755); pki/ and acme/ as ssm-fetch
	// does (0700).
	for _, d := range []string{units, dropins, etc} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range cfg.Systemd.Units {
		switch u.Name {
		case "berth-router.service", "berth-router.socket", "berth-router-https.socket":
			write(filepath.Join(units, u.Name), *u.Contents, 0o644)
			for _, d := range u.Dropins {
				write(filepath.Join(dropins, u.Name+".d", d.Name), *d.Contents, 0o644)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dropins, "berth-router.service.d", "30-acme.conf")); err != nil {
		t.Fatalf("no ACME drop-in in the Ignition config: %v", err)
	}
	// What berth-pki.service fetches from SSM: the reader's files and the
	// ACME settings and key, root's and 0600 in 0700 directories.
	write(filepath.Join(units, "berth-pki.service"), "[Unit]\nDescription=stands for the SSM fetch\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n", 0o644)
	write(filepath.Join(etc, "pki", "ca.pem"), read(p.CACert()), 0o644)
	write(filepath.Join(etc, "pki", "berth-reader.pem"), read(p.Client(etcdauth.Reader).Cert), 0o600)
	write(filepath.Join(etc, "pki", "berth-reader-key.pem"), read(p.Client(etcdauth.Reader).Key), 0o600)
	key := strings.Repeat("5a", 32)
	write(filepath.Join(etc, "acme", "acme.key"), key, 0o600)
	write(filepath.Join(etc, "acme", "acme.env"), "BERTH_ROUTER_ACME=1\nBERTH_ROUTER_ACME_CA="+pebble.Directory+
		"\nBERTH_ROUTER_ACME_CA_ROOT=/etc/berth/pebble-api.pem\n", 0o600)
	write(filepath.Join(etc, "pebble-api.pem"), read(pebble.APIRootFile), 0o644)
	for _, f := range cfg.Storage.Files {
		if f.Path == "/etc/berth/reader-berth-router.env" {
			write(filepath.Join(etc, "reader-berth-router.env"), decodeDataURL(t, *f.Contents.Source), 0o644)
		}
	}
	write(filepath.Join(etc, "berth.env"), fmt.Sprintf("BERTH_ETCD_ENDPOINTS=%s\nBERTH_ETCD_CACERT=/etc/berth/pki/ca.pem\nBERTH_ROUTER_ADMIN=%s\n",
		s.Endpoint, adminAddr), 0o644)
	// Ports 80 and 443 of the shared network are not ours to take.
	write(filepath.Join(dropins, "berth-router.socket.d", "listen.conf"), "[Socket]\nListenStream=\nListenStream="+httpAddr.String()+"\n", 0o644)
	write(filepath.Join(dropins, "berth-router-https.socket.d", "listen.conf"), "[Socket]\nListenStream=\nListenStream="+tlsAddr.String()+"\n", 0o644)

	// Pebble's API certificate names localhost; the container's minimal
	// root has no /etc/hosts.
	hosts := filepath.Join(dir, "hosts")
	write(hosts, "127.0.0.1 localhost\n", 0o644)
	c := systemdtest.Boot(t, "berth-acme-router",
		systemdtest.Bind{Host: hosts, Container: "/etc/hosts", ReadOnly: true},
		systemdtest.Bind{Host: systemdtest.BuildBerth(t), Container: "/opt/bin/berth", ReadOnly: true},
		systemdtest.Bind{Host: etc, Container: "/etc/berth", ReadOnly: true},
		systemdtest.Bind{Host: units, Container: "/run/berth-units", ReadOnly: true},
		systemdtest.Bind{Host: dropins, Container: "/run/berth-dropins", ReadOnly: true})
	journal := func() string {
		j, _ := c.Exec("journalctl", "--no-pager", "-u", "berth-router.service")
		return j
	}
	script := `set -e
for u in /run/berth-units/*; do systemctl link "$u"; done
cp -r /run/berth-dropins/. /etc/systemd/system/
systemctl daemon-reload
systemctl start berth-router.socket berth-router-https.socket berth-router.service`
	if out, err := c.Exec("sh", "-c", script); err != nil {
		t.Fatalf("start: %v %s\n%s", err, out, journal())
	}

	env, err := c.Exec("sh", "-c", "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value berth-router.service)/environ")
	if err != nil || !strings.Contains(env, "BERTH_ROUTER_ACME_KEY_FILE=/run/credentials/berth-router.service/acme-key") ||
		!strings.Contains(env, "BERTH_ROUTER_ACME=1") || strings.Contains(env, key) {
		t.Errorf("berth-router's environment: %v\n%s\nwant the ACME settings and the key's credential path, not the key", err, env)
	}
	if out, err := c.Exec("sh", "-c", "stat -c %U /proc/$(systemctl show -p MainPID --value berth-router.service)"); err != nil || strings.TrimSpace(out) == "root" {
		t.Errorf("berth-router runs as %q (%v), want a dynamic user", out, err)
	}

	op := etcdtest.SecureClient(t, s, p, etcdauth.Operator)
	k, _ := registry.NewKeys("")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") }))
	defer backend.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dom, _ := k.Domain("web.example.com")
	inst, _ := k.Instance("web", "1")
	if _, err := op.Put(ctx, inst, fmt.Sprintf(`{"addr":%q,"state":"up"}`, strings.TrimPrefix(backend.URL, "http://"))); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Put(ctx, dom, `{"app":"web"}`); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pebble.IssuingRoots(t)},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, tlsAddr.String())
		},
	}}
	for {
		resp, err := hc.Get("https://web.example.com/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "hello" {
				t.Fatalf("got %s %q, want the app", resp.Status, body)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no HTTPS answer: %v\n%s", err, journal())
		}
		time.Sleep(500 * time.Millisecond)
	}
	r, err := op.Get(ctx, k.ACMEPrefix()+"data/certificates/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil || r.Count == 0 {
		t.Errorf("no certificate in the ACME storage (%v)", err)
	}
}

// decodeDataURL decodes Ignition's plain data: URLs.
func decodeDataURL(t *testing.T, src string) string {
	t.Helper()
	s, ok := strings.CutPrefix(src, "data:,")
	if !ok {
		t.Fatalf("not a plain data URL: %.30s", src)
	}
	out, err := url.PathUnescape(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
