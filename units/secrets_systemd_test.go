package units

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/secret"
	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/internal/systemdtest"
)

// TestSecretsNowhereButTmpfs is the sealed secrets' proof: an exec-runtime
// app whose env refers to a sealed secret runs as a rendered unit on a real
// systemd, its hooks acting as berth-agent against an etcd with TLS and
// berth's roles. The app sees the value; then every unit file, every etcd
// value, every process's command line and environment (but the app's own)
// and the whole journal are searched for it, and it is found nowhere but
// the env file on tmpfs, which the stop removes.
func TestSecretsNowhereButTmpfs(t *testing.T) {
	s, p := etcdtest.Secure(t)
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc-berth")
	pkiDir := filepath.Join(etc, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
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
	agent := p.Client(etcdauth.Agent)
	copyFile(agent.Cert, filepath.Join(pkiDir, "berth-agent.pem"), 0o600)
	copyFile(agent.Key, filepath.Join(pkiDir, "berth-agent-key.pem"), 0o600)
	id, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := secret.WriteIdentity(filepath.Join(pkiDir, "secrets.key"), id); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(etc, "berth.env"), []byte(fmt.Sprintf(`BERTH_ETCD_ENDPOINTS=%s
BERTH_ETCD_CACERT=/etc/berth/pki/ca.pem
BERTH_ETCD_CERT=/etc/berth/pki/berth-agent.pem
BERTH_ETCD_KEY=/etc/berth/pki/berth-agent-key.pem
`, s.Endpoint)), 0o644)

	// The operator seals the value and publishes the app.
	rnd := make([]byte, 12)
	rand.Read(rnd)
	token := "proof-" + hex.EncodeToString(rnd)
	value := token + ` "quoted" $HOME \ and spaces `
	op := etcdtest.SecureClient(t, s, p, etcdauth.Operator)
	k, _ := registry.NewKeys("")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st := &secret.Store{KV: op, Keys: k}
	if err := st.Init(ctx, []string{id.Recipient().String()}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "vault", "db-password", []byte(value)); err != nil {
		t.Fatal(err)
	}
	apps, err := spec.Parse([]byte(`apiVersion: berth/v1
name: vault
runtime: exec
command: [/opt/bin/berth, demo-app]
ports: [{container: 8080, tags: [http]}]
env: {DB_PASSWORD: "secret:db-password", MODE: proof}
health: {http: /health, interval: 200ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.PublishApp(ctx, op, k, apps[0]); err != nil {
		t.Fatal(err)
	}
	files, err := Render(apps[0], Options{})
	if err != nil {
		t.Fatal(err)
	}
	unitDir := filepath.Join(dir, "units")
	os.MkdirAll(unitDir, 0o755)
	for _, f := range files {
		os.WriteFile(filepath.Join(unitDir, f.Name), f.Content, 0o644)
	}

	c := systemdtest.Boot(t, "berth-secrets",
		systemdtest.Bind{Host: systemdtest.BuildBerth(t), Container: "/opt/bin/berth", ReadOnly: true},
		systemdtest.Bind{Host: etc, Container: "/etc/berth", ReadOnly: true},
		systemdtest.Bind{Host: unitDir, Container: "/run/berth-units", ReadOnly: true})
	journal := func() string {
		j, _ := c.Exec("journalctl", "--no-pager", "-o", "export")
		return j
	}
	if out, err := c.Exec("sh", "-c", "systemctl link /run/berth-units/vault@.service && systemctl start vault@1.service"); err != nil {
		j, _ := c.Exec("journalctl", "--no-pager", "-u", "vault@1.service")
		t.Fatalf("start: %v %s\n%s", err, out, j)
	}
	inst, _ := k.Instance("vault", "1")
	for {
		r, err := op.Get(ctx, inst)
		if err == nil && len(r.Kvs) == 1 {
			break
		}
		if ctx.Err() != nil {
			j, _ := c.Exec("journalctl", "--no-pager", "-u", "vault@1.service")
			t.Fatalf("the instance never registered\n%s", j)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The app has the value, exactly.
	pidText, _ := c.Exec("systemctl", "show", "-p", "MainPID", "--value", "vault@1.service")
	env, err := c.Exec("sh", "-c", "tr '\\0' '\\n' < /proc/"+strings.TrimSpace(pidText)+"/environ")
	if err != nil || !strings.Contains(env, "\nDB_PASSWORD="+value+"\n") || !strings.Contains(env, "MODE=proof") {
		t.Fatalf("the app's environment lacks DB_PASSWORD (%v):\n%s", err, env)
	}
	// The env file: on tmpfs, 0600, the one place on the node.
	stat, err := c.Exec("stat", "-f", "-c", "%T", "/run/berth/secrets")
	if err != nil || strings.TrimSpace(stat) != "tmpfs" {
		t.Errorf("/run/berth/secrets is on %q (%v), want tmpfs", stat, err)
	}
	mode, _ := c.Exec("stat", "-c", "%a %U", "/run/berth/secrets/vault@1/env")
	if strings.TrimSpace(mode) != "600 root" {
		t.Errorf("env file mode %q, want 600 root", mode)
	}
	if f, _ := c.Exec("cat", "/run/berth/secrets/vault@1/env"); !strings.Contains(f, token) {
		t.Errorf("env file lacks the value: %q", f)
	}

	// Unit files, as written and as systemd sees them.
	units, _ := c.Exec("sh", "-c", "cat /run/berth-units/* /etc/systemd/system/*.service 2>/dev/null; systemctl cat vault@1.service; systemctl show vault@1.service")
	if !strings.Contains(units, "--secret DB_PASSWORD=db-password") {
		t.Fatalf("the unit lacks the secret's reference:\n%s", units)
	}
	if strings.Contains(units, token) {
		t.Error("a unit file holds the secret's value")
	}
	// Every etcd value.
	root := etcdtest.SecureClient(t, s, p, etcdauth.RootUser)
	all, err := root.Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil || len(all.Kvs) < 5 {
		t.Fatalf("read etcd: %v", err)
	}
	for _, kv := range all.Kvs {
		if strings.Contains(string(kv.Value), token) {
			t.Errorf("etcd key %s holds the value", kv.Key)
		}
	}
	if appRec, _ := op.Get(ctx, mustKey(k.App("vault"))); len(appRec.Kvs) != 1 || !strings.Contains(string(appRec.Kvs[0].Value), `"DB_PASSWORD":"secret:db-password"`) {
		t.Errorf("the published spec does not keep the reference: %v", appRec.Kvs)
	}
	// Every process on the machine (the host's /proc sees the container's):
	// no command line has it, and the only environment is the app's.
	appPID := hostPIDsWith(t, "environ", token)
	if len(appPID) != 1 {
		t.Errorf("processes with the value in their environment: %v, want the app alone", appPID)
	}
	for _, pid := range appPID {
		cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		if got := strings.ReplaceAll(string(cmdline), "\x00", " "); got != "/opt/bin/berth demo-app " {
			t.Errorf("process %s (%q) has the value in its environment", pid, got)
		}
	}
	if pids := hostPIDsWith(t, "cmdline", token); len(pids) > 0 {
		t.Errorf("processes with the value on their command line: %v", pids)
	}
	if strings.Contains(journal(), token) {
		t.Error("the journal holds the value")
	}

	// Stop: the env file is gone, and the journal still has no value.
	if out, err := c.Exec("systemctl", "stop", "vault@1.service"); err != nil {
		t.Fatalf("stop: %v %s", err, out)
	}
	if out, err := c.Exec("ls", "-A", "/run/berth/secrets"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("after stop /run/berth/secrets holds %q (%v)", out, err)
	}
	if pids := hostPIDsWith(t, "environ", token); len(pids) > 0 {
		t.Errorf("after stop, processes with the value: %v", pids)
	}
	if j := journal(); strings.Contains(j, token) {
		t.Error("the journal holds the value")
	} else if !strings.Contains(j, "vault@1.service") || !strings.Contains(j, "secrets written") {
		t.Error("the journal has no record of the unit and its pre-start hook: the search proves nothing")
	}
}

func mustKey(k string, err error) string {
	if err != nil {
		panic(err)
	}
	return k
}

// hostPIDsWith lists the processes whose /proc/PID/<file> holds s.
func hostPIDsWith(t *testing.T, file, s string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), file))
		if err == nil && strings.Contains(string(b), s) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}
