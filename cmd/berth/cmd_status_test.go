package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

func TestStatusAndRoutes(t *testing.T) {
	srv, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	ctx := context.Background()
	if code, _, errOut := berth(t, "apply", "../../examples/paas-monitor.yaml", "--etcd-endpoints", srv.Endpoint); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	for i, addr := range []string{"127.0.0.1:8001", "127.0.0.1:8002"} {
		key, val, err := registry.InstanceKV(k, &registry.Instance{App: "paas-monitor", ID: string(rune('1' + i)), Addr: addr, State: registry.StateUp})
		if err != nil {
			t.Fatal(err)
		}
		cli.Put(ctx, key, val)
	}
	if _, err := registry.Transition(ctx, cli, k, "paas-monitor", 0, registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted}); err != nil {
		t.Fatal(err)
	}

	// Two of the three instances are live: the third is on its way (a
	// scale just made says so, rather than showing fewer backends).
	code, out, errOut := berth(t, "routes", "--etcd-endpoints", srv.Endpoint)
	if code != 0 || !strings.Contains(out, "paas-monitor.example.com") || !strings.Contains(out, "127.0.0.1:8001,127.0.0.1:8002") ||
		!strings.Contains(out, " 2/3 (1 starting) ") {
		t.Fatalf("routes: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = berth(t, "status", "-o", "json", "--etcd-endpoints", srv.Endpoint)
	var rows []statusRow
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0].Up != 2 || rows[0].Current != "started" {
		t.Fatalf("status: exit %d, %q", code, out)
	}
	// Counted against what the spec asks for (3), not against the
	// instances that happen to be registered (2).
	if rows[0].Wanted != 3 || rows[0].Instances != 2 {
		t.Fatalf("status: wanted %d, instances %d; want 3 and 2", rows[0].Wanted, rows[0].Instances)
	}
	if code, out, _ = berth(t, "status", "--etcd-endpoints", srv.Endpoint); code != 0 || !strings.Contains(out, " 2/3 ") {
		t.Fatalf("status table: exit %d, %q; want UP/WANTED 2/3", code, out)
	}

	// Passivated, instances gone: routes say it is asleep.
	if _, err := registry.Update(ctx, cli, k, "paas-monitor", func(*registry.Status) (registry.Status, bool) {
		return registry.Status{Current: registry.StatusPassivated, Expected: registry.StatusPassivated}, true
	}); err != nil {
		t.Fatal(err)
	}
	prefix, _ := k.Instance("paas-monitor", "1")
	cli.Delete(ctx, strings.TrimSuffix(prefix, "1"), clientv3.WithPrefix())
	if code, out, _ = berth(t, "routes", "--etcd-endpoints", srv.Endpoint); code != 0 || !strings.Contains(out, "asleep (the next request wakes it)") {
		t.Fatalf("routes of a passivated app: exit %d, %q", code, out)
	}
}

func TestUnreachableEtcdNamesEndpoint(t *testing.T) {
	code, _, errOut := berth(t, "status", "--etcd-endpoints", "127.0.0.1:1", "--etcd-request-timeout", "300ms", "--etcd-dial-timeout", "300ms")
	if code != exitFailure || !strings.Contains(errOut, "no etcd at 127.0.0.1:1") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestEtcdTLSClientCertificates(t *testing.T) {
	pki, err := etcdtest.WritePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := etcdtest.StartTLS(t.TempDir(), pki)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tlsArgs := []string{"--etcd-endpoints", srv.Endpoint, "--etcd-cacert", pki.CA, "--etcd-cert", pki.ClientCert, "--etcd-key", pki.ClientKey}
	if code, out, errOut := berth(t, append([]string{"apply", "../../examples/paas-monitor.yaml"}, tlsArgs...)...); code != 0 {
		t.Fatalf("apply over TLS: %d %q %q", code, out, errOut)
	}
	if code, out, _ := berth(t, append([]string{"routes"}, tlsArgs...)...); code != 0 || !strings.Contains(out, "paas-monitor.example.com") {
		t.Fatalf("routes over TLS: %d %q", code, out)
	}
	// Without a client certificate the server refuses us.
	code, _, errOut := berth(t, "status", "--etcd-endpoints", srv.Endpoint, "--etcd-cacert", pki.CA, "--etcd-request-timeout", "1s", "--etcd-dial-timeout", "1s")
	if code == 0 {
		t.Fatalf("status without a client certificate succeeded: %q", errOut)
	}
	if code, _, errOut := berth(t, "status", "--etcd-endpoints", srv.Endpoint, "--etcd-cacert", "/nonexistent"); code == 0 || !strings.Contains(errOut, "--etcd-cacert") {
		t.Fatalf("missing CA file: %d %q", code, errOut)
	}
}
