package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/registry"
)

// TestFleetStatusJournalRefusals: berth fleet status and journal refuse,
// with fleetctl's words and exit status 1, a unit that does not exist,
// a global one and one not loaded on a machine, all before running
// anything; journal takes exactly one unit. The records are what the
// scheduler and the agents would write.
func TestFleetStatusJournalRefusals(t *testing.T) {
	srv, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	ctx := context.Background()
	put := func(key string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if _, err := cli.Put(ctx, key, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	// m1 answers ssh nowhere (a closed port on loopback); m3 has no record.
	for _, m := range []string{"m1", "m2"} {
		key, _ := k.Node(m)
		put(key, registry.Node{Addr: "127.0.0.1"})
	}
	store := &fleet.Store{KV: cli, Keys: k}
	for name, content := range map[string]string{
		"web@.service":    "[Service]\nExecStart=/bin/sleep infinity\n",
		"global.service":  "[Service]\nExecStart=/bin/sleep infinity\n\n[X-Fleet]\nGlobal=true\n",
		"nowhere.service": "[Service]\nExecStart=/bin/sleep infinity\n",
	} {
		if err := store.Submit(ctx, name, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"web@1.service", "web@2.service", "web@3.service", "global.service"} {
		if err := store.SetTarget(ctx, u, registry.TargetLaunched); err != nil {
			t.Fatal(err)
		}
	}
	// web@1 runs on m1, web@2 is placed but not reported yet, web@3 runs on
	// m3, whose node record is gone; global runs on both.
	put(k.FleetSchedule("web@1.service"), registry.FleetPlacement{Machine: "m1"})
	put(k.FleetState("web@1.service"), registry.FleetState{Machine: "m1", Load: "loaded", Active: "active", Sub: "running"})
	put(k.FleetSchedule("web@2.service"), registry.FleetPlacement{Machine: "m2"})
	put(k.FleetSchedule("web@3.service"), registry.FleetPlacement{Machine: "m3"})
	put(k.FleetState("web@3.service"), registry.FleetState{Machine: "m3", Load: "loaded", Active: "active", Sub: "running"})
	put(k.FleetSchedule("global.service"), registry.FleetPlacement{Machines: []string{"m1", "m2"}})
	put(k.FleetState("global.service"), registry.FleetState{Machine: "m2", Load: "loaded", Active: "active", Sub: "running"})
	t.Setenv("BERTH_NODE", "this-host")

	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"unknown unit", []string{"status", "nope.service"}, 1, "Unit nope.service does not exist."},
		{"a name without a type is a service", []string{"status", "nope"}, 1, "Unit nope.service does not exist."},
		{"every unit is checked before any runs", []string{"status", "web@1.service", "nope.service"}, 1, "Unit nope.service does not exist."},
		{"global unit", []string{"status", "global.service"}, 1, "Unable to determine status of global unit global.service."},
		{"placed, not reported", []string{"status", "web@2"}, 1, "Unit web@2.service does not appear to be loaded."},
		{"submitted, never started", []string{"status", "nowhere.service"}, 1, "Unit nowhere.service does not appear to be loaded."},
		{"machine without address", []string{"status", "web@3.service"}, 1, "unit web@3.service is on machine m3, which has no address (no nodes/m3 record)"},
		{"journal of an unknown unit", []string{"journal", "nope.service"}, 1, "Unit nope.service does not exist."},
		{"journal of a global unit", []string{"journal", "global.service"}, 1, "Unable to retrieve journal of global unit global.service."},
		{"journal of a unit not running", []string{"journal", "--lines", "5", "web@2.service"}, 1, "Unit web@2.service does not appear to be running."},
		{"journal without a unit", []string{"journal"}, 2, "journal needs one UNIT, got 0"},
		{"journal of two units", []string{"journal", "web@1.service", "web@2.service"}, 2, "journal needs one UNIT, got 2"},
		{"journal of a range", []string{"journal", "web@{1..2}.service"}, 2, "journal needs one UNIT, web@{1..2}.service names 2"},
		{"journal with negative lines", []string{"journal", "-n", "-1", "web@1.service"}, 2, "--lines must be 0 or more"},
		{"status without a unit", []string{"status"}, 2, "name at least one unit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"fleet"}, tc.args...), "--etcd-endpoints", srv.Endpoint)
			code, out, errOut := berth(t, args...)
			if code != tc.code || !strings.Contains(errOut, tc.inStderr) || out != "" {
				t.Fatalf("berth %s: exit %d, stdout %q, stderr %q; want exit %d, %q and no output",
					strings.Join(tc.args, " "), code, out, errOut, tc.code, tc.inStderr)
			}
		})
	}

	// web@1 is on m1, not this host: berth runs the system's ssh client,
	// whose own exit status (255: the connection is refused) is berth's.
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client")
	}
	for _, verb := range [][]string{{"status", "web@1.service"}, {"journal", "web@1"}} {
		code, _, errOut := berth(t, append(append([]string{"fleet"}, verb...), "--etcd-endpoints", srv.Endpoint,
			"--ssh-port", "1", "--ssh-username", "nobody", "--strict-host-key-checking=false", "--ssh-timeout", "2s")...)
		if code != 255 || !strings.Contains(errOut, "ssh nobody@127.0.0.1 (machine m1) failed with exit status 255") ||
			!strings.Contains(errOut, "port 1") {
			t.Errorf("%s over ssh to a closed port: exit %d, stderr %q; want 255 with ssh's and berth's messages", verb[0], code, errOut)
		}
	}
}
