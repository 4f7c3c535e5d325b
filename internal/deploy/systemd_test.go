package deploy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/internal/systemdtest"
)

// TestSystemdDeploy: deploys on one node's real systemd (a container):
// the first release's template is written and linked, its instances
// enabled and started; a rolling deploy of the next release starts
// <app>.2@<n>.service beside them, then stops and disables the old ones;
// the instances register through their hooks all along.
func TestSystemdDeploy(t *testing.T) {
	berthBin := systemdtest.BuildBerth(t)
	e := newEnv(t)
	etcDir, unitDir := t.TempDir(), t.TempDir()
	srvEndpoint := e.cli.Endpoints()[0]
	os.WriteFile(filepath.Join(etcDir, "berth.env"), []byte("BERTH_ETCD_ENDPOINTS="+srvEndpoint+"\nBERTH_ADVERTISE_IP=127.0.0.1\nBERTH_NODE=n1\n"), 0o644)
	c := systemdtest.Boot(t, "berth-deploy-test",
		systemdtest.Bind{Host: berthBin, Container: "/opt/bin/berth", ReadOnly: true},
		systemdtest.Bind{Host: etcDir, Container: "/etc/berth", ReadOnly: true},
		systemdtest.Bind{Host: unitDir, Container: "/var/lib/berth-units"})
	ctx := context.Background()
	conn, err := control.DialSystemd(ctx, c.BusAddress())
	if err != nil {
		t.Fatalf("dial the container's systemd: %v", err)
	}
	defer conn.Close()
	dctx, cancel := context.WithCancel(ctx)
	d := &Deployer{KV: e.cli, Keys: e.keys, Log: e.log, Interval: 200 * time.Millisecond,
		Driver: &Systemd{Conn: conn, Dir: unitDir, SystemdDir: "/var/lib/berth-units"}}
	done := make(chan struct{})
	go func() { defer close(done); d.Run(dctx, e.cache) }()
	defer func() { cancel(); <-done }()

	apps, err := spec.ParseFile("../../examples/demo-exec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	demo := apps[0]
	demo.Name, demo.Instances = "web", 2
	demo.Restart.Delay = spec.Duration(time.Second)
	state := func(verb, unit string) string {
		out, _ := c.Exec("systemctl", verb, unit)
		return strings.TrimSpace(out)
	}
	journal := func() string { out, _ := c.Exec("journalctl", "--no-pager", "-n", "40"); return out }

	if _, err := Publish(ctx, e.cli, e.keys, demo, Options{}); err != nil {
		t.Fatal(err)
	}
	if r := e.waitPhase(registry.PhaseDone); r.Healthy != 2 {
		t.Fatalf("first release: %+v\n%s", r, journal())
	}
	if st := state("is-enabled", "web@1.service"); st != "enabled" {
		t.Errorf("web@1.service is %q, want enabled (it starts at boot)", st)
	}
	next := *demo
	next.Version = "0.2.0"
	if _, err := Publish(ctx, e.cli, e.keys, &next, Options{}); err != nil {
		t.Fatal(err)
	}
	e.waitPhase(registry.PhaseDone)
	time.Sleep(300 * time.Millisecond)
	if g := e.gens(); g[2] != 2 || len(g) != 1 {
		t.Errorf("live by generation %v, want the 2 of generation 2\n%s", g, journal())
	}
	for unit, want := range map[string]string{
		"web@1.service": "inactive", "web@2.service": "inactive", "web.2@1.service": "active", "web.2@2.service": "active",
	} {
		if got := state("is-active", unit); got != want {
			t.Errorf("%s is %s, want %s", unit, got, want)
		}
	}
	if st := state("is-enabled", "web@1.service"); st == "enabled" {
		t.Errorf("web@1.service still enabled after it was replaced")
	}
	if _, err := os.Stat(filepath.Join(unitDir, "web.2@.service")); err != nil {
		t.Errorf("the release's template was not written: %v", err)
	}
}
