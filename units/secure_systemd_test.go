package units

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/systemdtest"
)

// TestPlatformUnitsWithEtcdRoles runs the rendered platform units on a real
// systemd against an etcd with TLS, client certificates and berth's roles,
// set up as docs/security.md says: berth.env carries the agent's
// certificate, and a drop-in hands berth-router (DynamicUser=yes) the
// reader's through LoadCredential= and a later EnvironmentFile=. The agent
// registers its node; the router, acting as berth-reader, routes.
func TestPlatformUnitsWithEtcdRoles(t *testing.T) {
	s, p := etcdtest.Secure(t)
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc-berth")
	pkiDir := filepath.Join(etc, "pki")
	if err := os.MkdirAll(pkiDir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile := func(from, to string, mode os.FileMode) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(p.CACert(), filepath.Join(pkiDir, "ca.pem"), 0o644)
	for _, u := range []string{etcdauth.Agent, etcdauth.Reader} {
		f := p.Client(u)
		copyFile(f.Cert, filepath.Join(pkiDir, u+".pem"), 0o600)
		copyFile(f.Key, filepath.Join(pkiDir, u+"-key.pem"), 0o600)
	}
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	routerAddr, adminAddr := free(), free()
	write := func(path, content string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(etc, "berth.env"), fmt.Sprintf(`BERTH_ETCD_ENDPOINTS=%s
BERTH_ETCD_CACERT=/etc/berth/pki/ca.pem
BERTH_ETCD_CERT=/etc/berth/pki/berth-agent.pem
BERTH_ETCD_KEY=/etc/berth/pki/berth-agent-key.pem
BERTH_ROUTER_ADMIN=%s
`, s.Endpoint, adminAddr))
	write(filepath.Join(etc, "reader-router.env"), `BERTH_ETCD_CERT=/run/credentials/berth-router.service/etcd-cert
BERTH_ETCD_KEY=/run/credentials/berth-router.service/etcd-key
`)
	dropins := filepath.Join(dir, "dropins")
	write(filepath.Join(dropins, "berth-router.service.d", "etcd-reader.conf"), `[Service]
LoadCredential=etcd-cert:/etc/berth/pki/berth-reader.pem
LoadCredential=etcd-key:/etc/berth/pki/berth-reader-key.pem
EnvironmentFile=/etc/berth/reader-router.env
`)
	// Port 80 of the shared network is not ours to take.
	write(filepath.Join(dropins, "berth-router.socket.d", "listen.conf"), "[Socket]\nListenStream=\nListenStream="+routerAddr+"\n")
	files, err := Platform(Options{})
	if err != nil {
		t.Fatal(err)
	}
	unitDir := filepath.Join(dir, "units")
	for _, f := range files {
		write(filepath.Join(unitDir, f.Name), string(f.Content))
	}

	c := systemdtest.Boot(t, "berth-secure-units",
		systemdtest.Bind{Host: systemdtest.BuildBerth(t), Container: "/opt/bin/berth", ReadOnly: true},
		systemdtest.Bind{Host: etc, Container: "/etc/berth", ReadOnly: true},
		systemdtest.Bind{Host: unitDir, Container: "/run/berth-units", ReadOnly: true},
		systemdtest.Bind{Host: dropins, Container: "/run/berth-dropins", ReadOnly: true})
	script := `set -e
systemctl link /run/berth-units/berth-router.socket /run/berth-units/berth-router.service /run/berth-units/berth-agent.service
cp -r /run/berth-dropins/. /etc/systemd/system/
systemctl daemon-reload
systemctl start berth-router.socket berth-agent.service berth-router.service`
	if out, err := c.Exec("sh", "-c", script); err != nil {
		j, _ := c.Exec("journalctl", "--no-pager", "-u", "berth-router.service", "-u", "berth-agent.service")
		t.Fatalf("start: %v %s\n%s", err, out, j)
	}
	journal := func() string {
		j, _ := c.Exec("journalctl", "--no-pager", "-u", "berth-router.service", "-u", "berth-agent.service")
		return j
	}

	op := etcdtest.SecureClient(t, s, p, etcdauth.Operator)
	k, _ := registry.NewKeys("")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s\n%s", what, journal())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("the agent's node record", func() bool {
		r, err := op.Get(ctx, k.NodesPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && r.Count == 1
	})

	env, err := c.Exec("sh", "-c", "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value berth-router.service)/environ")
	if err != nil || !strings.Contains(env, "BERTH_ETCD_CERT=/run/credentials/berth-router.service/etcd-cert") {
		t.Errorf("berth-router's environment: %v\n%s\nwant the reader's certificate from its credentials", err, env)
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") }))
	defer backend.Close()
	dom, _ := k.Domain("web.example.com")
	inst, _ := k.Instance("web", "1")
	if _, err := op.Put(ctx, dom, `{"app":"web"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Put(ctx, inst, fmt.Sprintf(`{"addr":%q,"state":"up"}`, strings.TrimPrefix(backend.URL, "http://"))); err != nil {
		t.Fatal(err)
	}
	waitFor("a request routed by berth-router", func() bool {
		req, _ := http.NewRequest("GET", "http://"+routerAddr+"/", nil)
		req.Host = "web.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
