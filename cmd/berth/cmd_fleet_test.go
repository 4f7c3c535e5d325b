package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/registry"
)

// TestFleetCommands: fleetctl's workflow against etcd and a scheduler:
// submit a template, start four instances that conflict on three
// machines (three placed, the fourth reported with its reason and exit
// status 1 instead of blocking), list, cat, stop, destroy.
func TestFleetCommands(t *testing.T) {
	srv, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	ctx := context.Background()
	for _, m := range []string{"m1", "m2", "m3"} {
		key, _ := k.Node(m)
		b, _ := json.Marshal(registry.Node{Addr: "10.0.0." + m[1:], Metadata: map[string]string{"role": "worker"}})
		cli.Put(ctx, key, string(b))
	}
	log, _ := logtest.NewNullLogger()
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); (&fleet.Scheduler{Client: cli, Keys: k, Log: log, ID: "s1"}).Run(sctx) }()
	defer func() { stop(); <-done }()

	dir := t.TempDir()
	unitFile := filepath.Join(dir, "web@.service")
	content := "[Service]\nExecStart=/bin/sleep infinity\n\n[X-Fleet]\nConflicts=web@*.service\nMachineMetadata=role=worker\n"
	os.WriteFile(unitFile, []byte(content), 0o644)
	e := []string{"--etcd-endpoints", srv.Endpoint}
	fl := func(args ...string) (int, string, string) {
		t.Helper()
		return berth(t, append(append([]string{"fleet"}, args...), e...)...)
	}
	if code, _, errOut := fl("submit", unitFile); code != 0 {
		t.Fatalf("submit: %s", errOut)
	}
	// The template file given to start is submitted, not started; a
	// changed local file is warned about, and the submitted one is used.
	changed := filepath.Join(dir, "changed")
	os.MkdirAll(changed, 0o755)
	os.WriteFile(filepath.Join(changed, "web@.service"), []byte(content+"# changed\n"), 0o644)
	if code, _, errOut := fl("start", "--no-block", filepath.Join(changed, "web@.service")); code != 0 || !strings.Contains(errOut, "differs from the submitted") {
		t.Fatalf("start of a changed template file: exit %d, %q", code, errOut)
	}
	// No agent runs here: the three placed units never become active, and
	// start says so after its checks, with web@4's reason.
	code, _, errOut := fl("start", "--block-attempts", "4", "web@{1..4}.service")
	if code != 1 || !strings.Contains(errOut, "3 unit(s) not launched after 4 checks") ||
		!strings.Contains(errOut, "web@4.service: every eligible machine runs a unit it conflicts with") {
		t.Fatalf("start 4 on 3 machines without agents: exit %d, %q; want 1, the waiting units and web@4's reason", code, errOut)
	}
	code, out, _ := fl("list-units", "-o", "json")
	var units []unitRow
	if code != 0 || json.Unmarshal([]byte(out), &units) != nil || len(units) != 4 {
		t.Fatalf("list-units: %d %q", code, out)
	}
	machines := map[string]bool{}
	for _, u := range units[:3] {
		machines[u.Machine] = true
	}
	if len(machines) != 3 || units[3].Machine != "" || units[3].Reason == "" {
		t.Fatalf("list-units: %+v, want three on different machines and web@4 with a reason", units)
	}
	// What the agents report shows in both lists.
	st, _ := json.Marshal(registry.FleetState{Machine: units[1].Machine, Load: "loaded", Active: "active", Sub: "running"})
	cli.Put(ctx, k.FleetState("web@2.service"), string(st))
	if code, out, _ := fl("list-units"); code != 0 || !regexp.MustCompile(`web@2\.service\s+m\d\s+active\s+running`).MatchString(out) {
		t.Fatalf("list-units with a reported state: %d %q", code, out)
	}
	if code, out, _ := fl("list-unit-files"); code != 0 || !regexp.MustCompile(`web@2\.service\s+\w{7}\s+launched\s+launched\s+m\d`).MatchString(out) {
		t.Fatalf("list-unit-files with a reported state: %d %q", code, out)
	}
	// start returns once the agent reports the unit active on its machine.
	if code, out, errOut := fl("start", "web@2.service"); code != 0 || !strings.Contains(out, "Unit web@2.service launched on m") {
		t.Fatalf("start of an active unit: exit %d, %q %q", code, out, errOut)
	}
	if code, out, _ := fl("list-unit-files"); code != 0 || !strings.Contains(out, "web@2.service") ||
		!strings.Contains(out, fleet.Hash([]byte(content))[:7]) || !strings.Contains(out, "launched") {
		t.Fatalf("list-unit-files: %d %q", code, out)
	}
	if code, out, _ := fl("cat", "web@2.service"); code != 0 || out != content {
		t.Fatalf("cat: %d %q", code, out)
	}
	if code, out, _ := fl("list-machines"); code != 0 || !strings.Contains(out, "m2") || !strings.Contains(out, "role=worker") {
		t.Fatalf("list-machines: %d %q", code, out)
	}
	if code, _, errOut := fl("unload", "web@1.service"); code != 0 {
		t.Fatalf("unload: %s", errOut)
	}
	// web@1's machine is free: the waiting web@4 takes it.
	until(t, "web@4 placed", 10*time.Second, func() bool {
		_, out, _ := fl("list-units", "-o", "json")
		json.Unmarshal([]byte(out), &units)
		for _, u := range units {
			if u.Unit == "web@4.service" && u.Machine != "" {
				return true
			}
		}
		return false
	})
	if code, out, _ := fl("destroy", "web@1.service"); code != 0 || !strings.Contains(out, "Destroyed web@1.service") {
		t.Fatalf("destroy: %d %q", code, out)
	}
	if code, _, errOut := fl("start", "db@1.service"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("start of an unknown unit: %d %q", code, errOut)
	}
	if code, _, _ := fl("start", "web@{1..3.service"); code != 2 {
		t.Fatalf("a bad range: exit %d, want 2", code)
	}
}
