package fleet_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/systemdtest"
)

const sleeper = "[Unit]\nDescription=sleeper %i\n\n[Service]\nExecStart=/bin/sleep infinity\n"

// TestExecutorWithRealSystemd: the executor of machine m1, against a real
// systemd in a container, starts the units placed on m1 (an instance from
// its template's file) and not the others, reports their state, stops a
// unit whose target becomes loaded, and takes away a unit placed
// elsewhere (stopped, its file removed).
func TestExecutorWithRealSystemd(t *testing.T) {
	_, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	unitDir := t.TempDir()
	c := systemdtest.Boot(t, "berth-fleet-test", systemdtest.Bind{Host: unitDir, Container: "/run/berth-units", ReadOnly: true})
	conn, err := control.DialSystemd(ctx, c.BusAddress())
	if err != nil {
		t.Fatalf("dial the container's systemd: %v", err)
	}
	defer conn.Close()

	store := &fleet.Store{KV: cli, Keys: k}
	if err := store.Submit(ctx, "sleeper@.service", []byte(sleeper)); err != nil {
		t.Fatal(err)
	}
	place := func(unit, machine, target string) {
		t.Helper()
		if err := store.SetTarget(ctx, unit, target); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(registry.FleetPlacement{Machine: machine})
		if _, err := cli.Put(ctx, k.FleetSchedule(unit), string(b)); err != nil {
			t.Fatal(err)
		}
	}
	place("sleeper@1.service", "m1", registry.TargetLaunched)
	place("sleeper@2.service", "m2", registry.TargetLaunched)

	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	leaving := make(chan struct{}, 2) // a second call would block no one and fail below
	e := &fleet.Executor{Conn: conn, Client: cli, Keys: k, Machine: "m1", Dir: unitDir, SystemdDir: "/run/berth-units",
		Log: log, Interval: 200 * time.Millisecond, Leaving: func(context.Context) { leaving <- struct{}{} }}
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	active := func(unit string) string {
		out, _ := c.Exec("systemctl", "is-active", unit)
		return strings.TrimSpace(out)
	}
	state := func(unit string) registry.FleetState {
		resp, _ := cli.Get(ctx, k.FleetState(unit))
		var s registry.FleetState
		if len(resp.Kvs) > 0 {
			json.Unmarshal(resp.Kvs[0].Value, &s)
		}
		return s
	}
	eventually(t, "sleeper@1 running on m1 and reported", func() bool {
		s := state("sleeper@1.service")
		return active("sleeper@1.service") == "active" && s.Active == "active" && s.Sub == "running" && s.Machine == "m1"
	})
	if got := active("sleeper@2.service"); got == "active" {
		t.Fatalf("sleeper@2, placed on m2, runs on m1")
	}
	if _, err := os.Stat(filepath.Join(unitDir, "sleeper@.service")); err != nil {
		t.Fatalf("the template's file was not written: %v", err)
	}

	// Passivation is the app's status: the launched unit is held stopped,
	// then started again by the wake.
	setStatus := func(expected string) {
		t.Helper()
		key, _ := k.Status("sleeper")
		b, _ := json.Marshal(registry.Status{Current: expected, Expected: expected})
		if _, err := cli.Put(ctx, key, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	setStatus(registry.StatusPassivated)
	eventually(t, "sleeper@1 held stopped while the app is passivated", func() bool {
		return active("sleeper@1.service") != "active" && state("sleeper@1.service").Active == "inactive"
	})
	setStatus(registry.StatusStarted)
	eventually(t, "sleeper@1 running again after the wake", func() bool {
		return active("sleeper@1.service") == "active" && state("sleeper@1.service").Active == "active"
	})

	place("sleeper@1.service", "m1", registry.TargetLoaded) // fleetctl stop
	eventually(t, "sleeper@1 stopped and reported inactive", func() bool {
		return active("sleeper@1.service") != "active" && state("sleeper@1.service").Active == "inactive"
	})

	place("sleeper@1.service", "m2", registry.TargetLaunched) // placed elsewhere
	eventually(t, "sleeper@1 gone from m1", func() bool {
		_, err := os.Stat(filepath.Join(unitDir, "sleeper@.service"))
		return os.IsNotExist(err) && state("sleeper@1.service").Machine == ""
	})
	if out, err := c.Exec("systemctl", "cat", "sleeper@.service"); err == nil {
		t.Fatalf("systemd still knows the template after it left:\n%s", out)
	}

	// The machine shuts down: the executor tells the agent once, while
	// its units are still stopping (a slow one holds the shutdown).
	slow := "[Unit]\nDescription=slow to stop\nAfter=dbus.service\n\n[Service]\nExecStart=/bin/sleep infinity\nExecStop=/bin/sleep 5\n"
	if err := store.Submit(ctx, "slow.service", []byte(slow)); err != nil {
		t.Fatal(err)
	}
	place("slow.service", "m1", registry.TargetLaunched)
	eventually(t, "slow.service running", func() bool { return active("slow.service") == "active" })
	if !e.IsJob("sleeper@2.service") || e.IsJob("other.service") || !e.HasJobs("sleeper") || e.HasJobs("other") {
		t.Errorf("IsJob: sleeper@2 %v, other %v; HasJobs: sleeper %v, other %v; want true, false, true, false",
			e.IsJob("sleeper@2.service"), e.IsJob("other.service"), e.HasJobs("sleeper"), e.HasJobs("other"))
	}
	select {
	case <-leaving:
		t.Fatal("Leaving called before the shutdown")
	default:
	}
	c.Exec("systemctl", "poweroff", "--no-block")
	select {
	case <-leaving:
	case <-time.After(20 * time.Second):
		t.Fatal("the executor did not report the shutdown")
	}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
