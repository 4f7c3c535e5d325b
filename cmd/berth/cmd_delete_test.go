package main

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/registry"
)

// writeSpec writes an app spec file and returns its path.
func writeSpec(t *testing.T, name string, domains ...string) string {
	t.Helper()
	y := "apiVersion: berth/v1\nname: " + name + "\nimage: example/" + name + "\ninstances: 2\nports: [{container: 8080}]\n"
	if len(domains) > 0 {
		y += "domains: [" + strings.Join(domains, ", ") + "]\n"
	}
	p := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// deployed puts an app's records in etcd as a running deploy leaves
// them: spec and domains (berth apply), status, an access record and,
// per node given, an instance record.
func deployed(t *testing.T, cli *clientv3.Client, endpoint, app string, nodes ...string) {
	t.Helper()
	if code, _, errOut := berth(t, "apply", writeSpec(t, app, app+".example.com"), "--etcd-endpoints", endpoint); code != 0 {
		t.Fatalf("apply %s: %s", app, errOut)
	}
	k, _ := registry.NewKeys("")
	ctx := context.Background()
	if _, err := registry.Transition(ctx, cli, k, app, 0, registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted,
		Units: map[string][]string{"n1": {app + "@1.service"}}}); err != nil {
		t.Fatal(err)
	}
	ak, _ := k.Access(app, "router-1")
	cli.Put(ctx, ak, `{"last":1}`)
	for i, node := range nodes {
		id := string(rune('1' + i))
		key, val, _ := registry.InstanceKV(k, &registry.Instance{App: app, ID: id, Addr: "127.0.0.1:900" + id, Node: node,
			Unit: app + "@" + id + ".service", State: registry.StateUp})
		cli.Put(ctx, key, val)
	}
}

// records reads what etcd holds of an app.
func records(t *testing.T, cli *clientv3.Client, app string) *registry.AppRecords {
	t.Helper()
	k, _ := registry.NewKeys("")
	r, err := registry.ReadApp(context.Background(), cli, k, app)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDeleteBadInput: what a wrong command line or an unknown app gets.
func TestDeleteBadInput(t *testing.T) {
	srv, _ := etcdtest.New(t)
	e := []string{"--etcd-endpoints", srv.Endpoint, "--driver", "local"}
	cases := []struct {
		name      string
		args      []string
		code      int
		stderr    string
		stdout    string
		jsonEmpty bool
	}{
		{name: "no app", args: []string{"delete"}, code: exitUsage, stderr: "delete needs at least one APP"},
		{name: "bad app name", args: append([]string{"delete", "Shop_1"}, e...), code: exitUsage, stderr: `invalid name: app "Shop_1"`},
		{name: "bad name among good ones", args: append([]string{"delete", "web", "a/b"}, e...), code: exitUsage, stderr: `app "a/b"`},
		{name: "unknown driver", args: []string{"delete", "web", "--driver", "kubernetes"}, code: exitUsage, stderr: "--driver must be systemd, fleet, berth or local"},
		{name: "unknown output", args: []string{"delete", "web", "-o", "yaml"}, code: exitUsage, stderr: "-o must be text or json"},
		{name: "unknown app", args: append([]string{"delete", "web"}, e...), code: exitFailure,
			stderr: "app web not found: no spec, status, domain or instance in etcd"},
		{name: "unknown app ignored", args: append([]string{"delete", "web", "--ignore-not-found"}, e...), code: exitOK, stdout: "web: not found"},
		{name: "unknown app ignored, json", args: append([]string{"delete", "web", "--ignore-not-found", "-o", "json"}, e...), code: exitOK, jsonEmpty: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := berth(t, c.args...)
			if code != c.code || !strings.Contains(errOut, c.stderr) || !strings.Contains(out, c.stdout) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stderr with %q, stdout with %q", code, out, errOut, c.code, c.stderr, c.stdout)
			}
			if c.jsonEmpty && strings.TrimSpace(out) != "[]" {
				t.Errorf("json output %q, want []", out)
			}
		})
	}
}

// TestDeleteBerthDriver: with berth fleet's jobs the app's template and
// instance jobs are destroyed (another app's, even with a similar name,
// stay), then every record of the app; a second delete says not found.
func TestDeleteBerthDriver(t *testing.T) {
	srv, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	ctx := context.Background()
	deployed(t, cli, srv.Endpoint, "web")
	deployed(t, cli, srv.Endpoint, "web-api")
	store := &fleet.Store{KV: cli, Keys: k}
	unit := []byte("[Service]\nExecStart=/bin/sleep infinity\n")
	for _, tmpl := range []string{"web@.service", "web-api@.service"} {
		if err := store.Submit(ctx, tmpl, unit); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"web@1.service", "web@2.service", "web-api@1.service"} {
		if err := store.SetTarget(ctx, u, registry.TargetLaunched); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(registry.FleetPlacement{Machine: "n1"})
		cli.Put(ctx, k.FleetSchedule(u), string(b))
	}

	code, out, errOut := berth(t, "delete", "web", "--driver", "berth", "--etcd-endpoints", srv.Endpoint)
	if code != 0 {
		t.Fatalf("delete: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, want := range []string{"web: marked deleted; removed spec, domain web.example.com", "destroyed web@1.service",
		"destroyed web@2.service", "destroyed web@.service", "removed status, 0 instance record(s), 1 access record(s)", "deleted web"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	jobs, _ := store.Jobs(ctx)
	if got := slices.Sorted(maps.Keys(jobs)); !slices.Equal(got, []string{"web-api@.service", "web-api@1.service"}) {
		t.Errorf("jobs left %v, want web-api's only", got)
	}
	for _, prefix := range []string{k.FleetSchedulePrefix(), k.FleetUnitsPrefix()} {
		resp, _ := cli.Get(ctx, prefix, clientv3.WithPrefix())
		for _, kv := range resp.Kvs {
			if strings.Contains(string(kv.Key), "/web@") {
				t.Errorf("left: %s", kv.Key)
			}
		}
		if len(resp.Kvs) != 1 {
			t.Errorf("%s: %d keys, want web-api's one", prefix, len(resp.Kvs))
		}
	}
	if r := records(t, cli, "web"); r.Found() {
		t.Errorf("records of web left: %+v", r)
	}
	if r := records(t, cli, "web-api"); r.Spec == nil || r.Status == nil || len(r.Domains) != 1 || r.AccessKeys != 1 {
		t.Errorf("web-api's records touched: %+v", r)
	}

	code, _, errOut = berth(t, "delete", "web", "--driver", "berth", "--etcd-endpoints", srv.Endpoint)
	if code != exitFailure || !strings.Contains(errOut, "app web not found") {
		t.Fatalf("second delete: exit %d, stderr %q; want not found", code, errOut)
	}
}

// TestDeleteFleetDriver: fleetctl destroy of the instance units the
// registry knows of (spec, status, instance records) and the template,
// with the connection flags.
func TestDeleteFleetDriver(t *testing.T) {
	srv, cli := etcdtest.New(t)
	deployed(t, cli, srv.Endpoint, "web")
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	bin := filepath.Join(dir, "fleetctl")
	os.WriteFile(bin, []byte("#!/bin/sh\necho \"$@\" >> "+calls+"\n"), 0o755)
	code, out, errOut := berth(t, "delete", "web", "--driver", "fleet", "--fleetctl", bin, "--fleet-tunnel", "203.0.113.10",
		"--etcd-endpoints", srv.Endpoint)
	if code != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	b, _ := os.ReadFile(calls)
	if want := "--tunnel 203.0.113.10 destroy web@1.service web@2.service web@.service\n"; string(b) != want {
		t.Errorf("fleetctl calls %q, want %q", b, want)
	}
	if r := records(t, cli, "web"); r.Found() {
		t.Errorf("records left: %+v", r)
	}

	// fleetctl failing: the app stays marked deleted, records kept, and
	// the next delete resumes.
	deployed(t, cli, srv.Endpoint, "shop")
	bad := filepath.Join(dir, "bad-fleetctl")
	os.WriteFile(bad, []byte("#!/bin/sh\necho 'Error: unable to reach fleet' >&2\nexit 1\n"), 0o755)
	code, _, errOut = berth(t, "delete", "shop", "--driver", "fleet", "--fleetctl", bad, "--etcd-endpoints", srv.Endpoint)
	if code != exitFailure || !strings.Contains(errOut, "unable to reach fleet") || !strings.Contains(errOut, "delete it again") {
		t.Fatalf("failing fleetctl: exit %d, stderr %q", code, errOut)
	}
	if r := records(t, cli, "shop"); r.Spec != nil || r.Status == nil || r.Status.Expected != registry.StatusDeleted || r.AccessKeys != 1 {
		t.Fatalf("after a failed delete: %+v", r)
	}
	code, out, errOut = berth(t, "delete", "shop", "--driver", "fleet", "--fleetctl", bin, "--etcd-endpoints", srv.Endpoint)
	if code != 0 || !strings.Contains(out, "removed nothing (an earlier delete did)") || records(t, cli, "shop").Found() {
		t.Fatalf("resumed delete: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestDeleteWaitsForInstances: records stay until the instances have
// deregistered; those still registered after --wait fail the delete,
// named, and the app stays marked deleted until a later delete.
func TestDeleteWaitsForInstances(t *testing.T) {
	srv, cli := etcdtest.New(t)
	deployed(t, cli, srv.Endpoint, "web", "n1", "n2")
	k, _ := registry.NewKeys("")
	args := []string{"delete", "web", "--driver", "local", "--etcd-endpoints", srv.Endpoint}

	code, _, errOut := berth(t, append(args, "--wait", "300ms")...)
	if code != exitFailure || !strings.Contains(errOut, "2 instance(s) of web still registered after 300ms") ||
		!strings.Contains(errOut, "web@2.service on n2 (127.0.0.1:9002)") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if r := records(t, cli, "web"); r.Spec != nil || len(r.Domains) != 0 || r.InstanceKeys != 2 || r.Status.Expected != registry.StatusDeleted {
		t.Fatalf("after the timeout: %+v", r)
	}

	// The units stop while a delete waits (their post-stop hooks remove
	// the records): it then purges.
	go func() {
		time.Sleep(300 * time.Millisecond)
		for _, id := range []string{"1", "2"} {
			key, _ := k.Instance("web", id)
			cli.Delete(context.Background(), key)
		}
	}()
	code, out, errOut := berth(t, append(args, "-o", "json")...)
	var done []control.Deleted
	if code != 0 || json.Unmarshal([]byte(out), &done) != nil || len(done) != 1 || done[0].Purged == nil || !done[0].Purged.Status {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if r := records(t, cli, "web"); r.Found() {
		t.Errorf("records left: %+v", r)
	}
}

// TestApplyDomainsCLI: a domain dropped from the spec is removed; a
// domain of another app is refused, naming it and --take-over.
func TestApplyDomainsCLI(t *testing.T) {
	srv, cli := etcdtest.New(t)
	e := []string{"--etcd-endpoints", srv.Endpoint}
	owners := func() map[string]string {
		out := map[string]string{}
		for _, app := range []string{"web", "shop"} {
			for _, d := range records(t, cli, app).Domains {
				out[d] = app
			}
		}
		return out
	}
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
		owners map[string]string
	}{
		{name: "first apply", args: []string{writeSpec(t, "web", "www.example.com", "old.example.com")}, stdout: "added domain old.example.com",
			owners: map[string]string{"www.example.com": "web", "old.example.com": "web"}},
		{name: "a domain left the spec", args: []string{writeSpec(t, "web", "www.example.com")},
			stdout: "removed domain old.example.com (no longer in the spec)", owners: map[string]string{"www.example.com": "web"}},
		{name: "another app's domain", args: []string{writeSpec(t, "shop", "shop.example.com", "www.example.com")}, code: exitFailure,
			stderr: "apply shop: domain www.example.com belongs to app web, not shop: drop it from the spec of web and apply that first, or apply with --take-over to move it to shop",
			owners: map[string]string{"www.example.com": "web"}},
		{name: "take over", args: []string{writeSpec(t, "shop", "shop.example.com", "www.example.com"), "--take-over"},
			stdout: "took domain www.example.com over from web", owners: map[string]string{"www.example.com": "shop", "shop.example.com": "shop"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := berth(t, append(append([]string{"apply"}, c.args...), e...)...)
			if code != c.code || !strings.Contains(out, c.stdout) || !strings.Contains(errOut, c.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d", code, out, errOut, c.code)
			}
			got := owners()
			if len(got) != len(c.owners) {
				t.Fatalf("domains %v, want %v", got, c.owners)
			}
			for d, app := range c.owners {
				if got[d] != app {
					t.Errorf("domain %s: %q, want %q", d, got[d], app)
				}
			}
		})
	}
}
