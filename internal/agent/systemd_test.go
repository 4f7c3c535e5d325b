package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/passivate"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/internal/systemdtest"
	"github.com/berthproject/berth/units"
)

// TestAgentWithRealSystemd boots systemd in a container, links the units
// berth render writes for an exec-runtime app, starts them over D-Bus, and
// checks that the node agent registers them (announced by the hooks),
// deregisters on stop and on a crash, and carries out passivation and wake.
func TestAgentWithRealSystemd(t *testing.T) {
	berthBin := systemdtest.BuildBerth(t)
	srv, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	runDir, etcDir, unitDir := t.TempDir(), t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(etcDir, "berth.env"), []byte("BERTH_ETCD_ENDPOINTS="+srv.Endpoint+"\nBERTH_ADVERTISE_IP=127.0.0.1\nBERTH_NODE=n1\nBERTH_SKYDNS_ZONE=berth.test\n"), 0o644)

	apps, err := spec.ParseFile("../../examples/demo-exec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	app := apps[0]
	app.Restart.Delay = spec.Duration(time.Second)
	// A second port, registered by name beside the first.
	app.Ports = append(app.Ports, spec.Port{Container: 9100, Protocol: "tcp", Name: "metrics", Tags: []string{"prometheus"}})
	files, err := units.Render(app, units.Options{})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(unitDir, files[0].Name), files[0].Content, 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := registry.PublishApp(ctx, cli, k, app); err != nil {
		t.Fatal(err)
	}

	c := systemdtest.Boot(t, "berth-agent-test",
		systemdtest.Bind{Host: berthBin, Container: "/opt/bin/berth", ReadOnly: true},
		systemdtest.Bind{Host: etcDir, Container: "/etc/berth", ReadOnly: true},
		systemdtest.Bind{Host: unitDir, Container: "/run/berth-units", ReadOnly: true},
		systemdtest.Bind{Host: runDir, Container: "/run/berth"})

	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	a := &Agent{Cli: cli, Keys: k, Log: log, Cache: registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log),
		Cfg: Config{Node: "n1", IP: "127.0.0.1", Socket: filepath.Join(runDir, "agent.sock"), StateDir: filepath.Join(runDir, "agent"),
			DBusAddress: c.BusAddress(), LeaseTTL: 3 * time.Second}}
	agentDone := make(chan struct{})
	go func() { a.Run(ctx); close(agentDone) }()
	defer func() { cancel(); <-agentDone }()
	<-a.Ready()

	conn, err := control.DialSystemd(ctx, c.BusAddress())
	if err != nil {
		t.Fatalf("dial the container's systemd: %v", err)
	}
	defer conn.Close()
	if _, err := conn.LinkUnitFilesContext(ctx, []string{"/run/berth-units/demo@.service"}, true, true); err != nil {
		t.Fatal(err)
	}
	if err := conn.ReloadContext(ctx); err != nil {
		t.Fatal(err)
	}
	for _, i := range []string{"1", "2", "3"} {
		if _, err := conn.StartUnitContext(ctx, "demo@"+i+".service", "replace", nil); err != nil {
			t.Fatal(err)
		}
	}
	live := func() map[string]*registry.Instance {
		out := map[string]*registry.Instance{}
		for _, in := range a.Cache.Snapshot().Live("demo") {
			out[in.ID] = in
		}
		return out
	}
	journal := func() string { out, _ := c.Exec("journalctl", "--no-pager", "-n", "60"); return out }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\njournal:\n%s", what, journal())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("3 instances registered", func() bool { return len(live()) == 3 })
	for id, in := range live() {
		if in.Node != "n1" || !strings.HasPrefix(in.Addr, "127.0.0.1:") {
			t.Errorf("instance %s: %+v", id, in)
		}
	}
	key1, _ := k.Instance("demo", "1")
	r, _ := cli.Get(ctx, key1)
	if len(r.Kvs) != 1 || r.Kvs[0].Lease == 0 {
		t.Fatal("instance record not on a lease")
	} else if ttl, _ := cli.TimeToLive(ctx, clientv3.LeaseID(r.Kvs[0].Lease)); ttl.GrantedTTL != 3 {
		t.Errorf("instance record on a lease of %ds, want the agent's node lease (3s)", ttl.GrantedTTL)
	}
	// Both ports are registered by name, and mirrored in the SkyDNS layout
	// (the units' BERTH_SKYDNS_ZONE) on the agent's lease.
	in1 := live()["1"]
	if m := in1.Ports["metrics"]; in1.Port != "demo" || in1.Ports["demo"].Addr != in1.Addr || !strings.HasPrefix(m.Addr, "127.0.0.1:") || m.Addr == in1.Addr || m.Tags[0] != "prometheus" {
		t.Errorf("instance 1 ports: %q %+v, want demo and metrics", in1.Port, in1.Ports)
	}
	_, metricsPort, _ := strings.Cut(in1.Ports["metrics"].Addr, ":")
	for _, mk := range []string{"/skydns/test/berth/service/demo/1", "/skydns/test/berth/service/demo/_tcp/_metrics/1"} {
		m, _ := cli.Get(ctx, mk)
		if len(m.Kvs) != 1 || m.Kvs[0].Lease != r.Kvs[0].Lease {
			t.Errorf("SkyDNS mirror %s: %v, want it on the record's lease %x", mk, m.Kvs, r.Kvs[0].Lease)
		}
	}
	if m, _ := cli.Get(ctx, "/skydns/test/berth/service/demo/_tcp/_metrics/1"); len(m.Kvs) == 1 && !strings.Contains(string(m.Kvs[0].Value), `"port":`+metricsPort+",") {
		t.Errorf("SkyDNS mirror of the metrics port: %s, want port %s", m.Kvs[0].Value, metricsPort)
	}
	waitFor("the node's units recorded", func() bool {
		st := a.Cache.Snapshot().Status["demo"]
		return st != nil && len(st.Units["n1"]) == 3 && st.Current == registry.StatusStarted
	})

	// A clean stop deregisters at once.
	if _, err := conn.StopUnitContext(ctx, "demo@2.service", "replace", nil); err != nil {
		t.Fatal(err)
	}
	waitFor("demo@2 deregistered on stop", func() bool { _, ok := live()["2"]; return !ok && len(live()) == 2 })
	waitFor("demo@2's mirror removed on stop", func() bool {
		m, _ := cli.Get(ctx, "/skydns/test/berth/service/demo/_tcp/_metrics/2")
		return len(m.Kvs) == 0
	})

	// A crash: the record leaves, systemd restarts the unit, it comes back.
	before := live()["1"].Addr
	conn.KillUnitWithTarget(ctx, "demo@1.service", "main", 9)
	waitFor("demo@1 deregistered after the crash", func() bool { in := live()["1"]; return in == nil || in.Addr != before })
	waitFor("demo@1 back after the restart", func() bool { return live()["1"] != nil })

	// Passivation through the systemd driver: the expected state changes
	// in etcd and the agent stops the units.
	p := &passivate.Passivator{KV: cli, Keys: k, Log: log, Cfg: passivate.Config{MinUptime: time.Millisecond,
		Now: func() time.Time { return time.Now().Add(time.Hour) }}}
	snap, _ := registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log).Load(ctx)
	ds, err := p.Pass(ctx, snap)
	if err != nil || len(ds) != 1 || !ds[0].Passivate {
		t.Fatalf("passivation pass: %+v %v", ds, err)
	}
	waitFor("units stopped after passivation", func() bool {
		out, _ := c.Exec("systemctl", "is-active", "demo@1.service", "demo@3.service")
		return len(live()) == 0 && !strings.Contains(out, "active\n") || strings.Count(out, "inactive") == 2
	})
	waitFor("no live instance", func() bool { return len(live()) == 0 })

	wake := func() {
		t.Helper()
		if _, err := registry.Update(ctx, cli, k, "demo", func(cur *registry.Status) (registry.Status, bool) {
			n := *cur
			n.Current, n.Expected = registry.StatusStarting, registry.StatusStarted
			return n, true
		}); err != nil {
			t.Fatal(err)
		}
	}
	// A wake (what the router's transaction does): the agent starts the
	// units that ran on this node.
	wake()
	waitFor("instances back after the wake", func() bool { return len(live()) == 2 })
	if _, ok := live()["2"]; ok {
		t.Error("the wake started demo@2, which the operator had stopped")
	}

	// The app becomes berth fleet's (demo@3 placed on another machine, as
	// the scheduler would after this node's lease expired): its passivation
	// and wake are the executors' to carry out, wherever its units are
	// placed; this node has none placed, so the wake starts nothing here.
	waitFor("the app started", func() bool {
		st := a.Cache.Snapshot().Status["demo"]
		return st != nil && st.Current == registry.StatusStarted
	})
	snap, _ = registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log).Load(ctx)
	if ds, err := p.Pass(ctx, snap); err != nil || len(ds) != 1 || !ds[0].Passivate {
		t.Fatalf("second passivation pass: %+v %v", ds, err)
	}
	waitFor("no live instance", func() bool { return len(live()) == 0 })
	store := &fleet.Store{KV: cli, Keys: k}
	tmpl, _ := os.ReadFile(filepath.Join(unitDir, files[0].Name))
	if err := store.Submit(ctx, "demo@.service", tmpl); err != nil {
		t.Fatal(err)
	}
	if err := store.SetTarget(ctx, "demo@3.service", registry.TargetLaunched); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, k.FleetSchedule("demo@3.service"), `{"machine":"n2"}`); err != nil {
		t.Fatal(err)
	}
	waitFor("the executor to see the job", func() bool { return a.fleetApp("demo") })
	wake()
	time.Sleep(2 * time.Second) // the reconciler's passes, each second
	for _, unit := range []string{"demo@1.service", "demo@3.service"} {
		if out, _ := c.Exec("systemctl", "is-active", unit); strings.TrimSpace(out) != "inactive" {
			t.Errorf("%s is %q here after the wake of an app berth fleet places (nothing here), want inactive", unit, strings.TrimSpace(out))
		}
	}
}

// fleetApp reports whether the agent's fleet executor knows jobs of app.
func (a *Agent) fleetApp(app string) bool {
	ex := a.executor.Load()
	return ex != nil && ex.HasJobs(app)
}
