package cluster

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

type fleetUnit struct {
	Unit    string `json:"unit"`
	Machine string `json:"machine"`
	Active  string `json:"active"`
	Reason  string `json:"reason"`
}

// TestFleetCluster drives the three-node cluster with berth fleet alone:
// the agents schedule (one leader) and carry out the placements; the
// harness starts no demo unit.
func TestFleetCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("the cluster takes a minute to start")
	}
	c := StartFleet(t)
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	fleet := func(t *testing.T, args ...string) string {
		t.Helper()
		return n1.Exec(t, append([]string{"/opt/bin/berth", "fleet", "--etcd-request-timeout", "2s"}, args...)...)
	}
	units := func(t *testing.T) []fleetUnit {
		t.Helper()
		var us []fleetUnit
		if err := json.Unmarshal([]byte(strings.TrimSpace(fleet(t, "list-units", "-o", "json"))), &us); err != nil {
			t.Fatal(err)
		}
		return us
	}
	// polled is units inside a wait: a read that fails (an etcd leader
	// election after a node loss: "leader changed") is asked again, as
	// nil.
	polled := func() []fleetUnit {
		out, err := n1.Try("/opt/bin/berth", "fleet", "--etcd-request-timeout", "2s", "list-units", "-o", "json")
		var us []fleetUnit
		if err != nil || json.Unmarshal([]byte(strings.TrimSpace(out)), &us) != nil {
			return nil
		}
		return us
	}
	perMachine := func(us []fleetUnit) map[string]int {
		m := map[string]int{}
		for _, u := range us {
			m[u.Machine]++
		}
		return m
	}
	defer func() {
		t.Log("| scenario | requests | failed | time to heal |\n|---|---|---|---|\n" + strings.Join(report, "\n"))
	}()

	t.Run("1 start 10 units on 3 machines", func(t *testing.T) {
		c.Use(t)
		if out := fleet(t, "list-machines"); !strings.Contains(out, "az=n3") || !strings.Contains(out, "role=worker") {
			t.Fatalf("list-machines:\n%s", out)
		}
		fleet(t, "submit", "/run/berth-units/demo@.service")
		start := time.Now()
		fleet(t, "start", "demo@{1..10}.service")
		took := c.waitFor("10 live instances", 90*time.Second, func() bool { return c.Live() == 10 })
		t.Logf("berth fleet start demo@{1..10}: 10 instances live (health-checked, routed) %s after the start", took.Round(100*time.Millisecond))
		record("fleet start 10 units", LoadResult{}, time.Since(start))
		if pm := perMachine(units(t)); pm["n1"] < 3 || pm["n2"] < 3 || pm["n3"] < 3 {
			t.Errorf("units per machine %v, want 3 or 4 on each", pm)
		}
	})

	t.Run("2 a node is lost (SIGKILL): its units run elsewhere", func(t *testing.T) {
		c.Use(t)
		load := c.StartLoad(40*time.Second, n1, n2)
		time.Sleep(time.Second)
		start := time.Now()
		c.KillNode(n3)
		stopped := time.Since(start)
		c.waitFor("n3's units placed on n1 and n2", 40*time.Second, func() bool {
			pm := perMachine(polled())
			return pm["n3"] == 0 && pm["n1"]+pm["n2"] == 10
		})
		placed := time.Since(start)
		c.waitFor("10 live instances again", 60*time.Second, func() bool { return c.Live() == 10 })
		heal := time.Since(start)
		t.Logf("n3 killed (in %s): its units placed elsewhere after %s, all 10 live after %s (agent lease TTL 10s)",
			stopped.Round(100*time.Millisecond), placed.Round(100*time.Millisecond), heal.Round(100*time.Millisecond))
		r, err := load.Wait()
		if err != nil {
			t.Fatal(err)
		}
		record("fleet: kill n3, units rescheduled", r, heal)
		if r.Failed > 0 {
			t.Errorf("%d of %d requests to the other routers failed: %v", r.Failed, r.Total, r.Errors)
		}
		// The node comes back: nothing moves back to it.
		before := units(t)
		c.RestartNode(n3, nil)
		time.Sleep(3 * time.Second)
		after := units(t)
		for i := range before {
			if i < len(after) && before[i].Machine != after[i].Machine {
				t.Errorf("%s moved from %s to %s when n3 came back", before[i].Unit, before[i].Machine, after[i].Machine)
			}
		}
	})

	t.Run("3 start 100 units", func(t *testing.T) {
		c.Use(t)
		unit := "[Unit]\nDescription=sleeper %i\n\n[Service]\nExecStart=/bin/sleep infinity\n"
		n1.Exec(t, "sh", "-c", `printf '%s' "$1" > /tmp/sleeper@.service`, "sh", unit)
		fleet(t, "submit", "/tmp/sleeper@.service")
		start := time.Now()
		fleet(t, "start", "--no-block", "sleeper@{1..100}.service")
		took := c.waitFor("100 sleeper units active", 120*time.Second, func() bool {
			active := 0
			for _, u := range polled() {
				if strings.HasPrefix(u.Unit, "sleeper@") && u.Active == "active" {
					active++
				}
			}
			return active == 100
		})
		t.Logf("berth fleet start sleeper@{1..100}: 100 units active (as the agents report) %s after the start",
			took.Round(100*time.Millisecond))
		record("fleet start 100 units (active)", LoadResult{}, time.Since(start))
		pm := map[string]int{}
		for _, u := range units(t) {
			if strings.HasPrefix(u.Unit, "sleeper@") {
				pm[u.Machine]++
			}
		}
		if len(pm) != 3 || pm["n1"] < 30 || pm["n2"] < 30 || pm["n3"] < 30 {
			t.Errorf("100 units per machine %v, want them spread over the three", pm)
		}
		fleet(t, "destroy", "sleeper@{1..100}.service", "sleeper@.service")
	})

	t.Run("4 placement rules on the cluster", func(t *testing.T) {
		c.Use(t)
		write := func(name, xfleet string) string {
			path := "/tmp/" + name
			content := "[Unit]\nDescription=%n\n\n[Service]\nExecStart=/bin/sleep infinity\n\n[X-Fleet]\n" + xfleet + "\n"
			n1.Exec(t, "sh", "-c", `printf '%s' "$1" > "$2"`, "sh", content, path)
			return path
		}
		fleet(t, "start", write("in-n2.service", "MachineMetadata=az=n2"))
		fleet(t, "start", write("next-to.service", "MachineOf=in-n2.service"))
		fleet(t, "start", write("everywhere.service", "Global=true\nMachineMetadata=role=worker"))
		fleet(t, "submit", write("one@.service", "Conflicts=one@*.service"))
		if out, err := n1.Try("/opt/bin/berth", "fleet", "start", "one@{1..4}.service"); err == nil || !strings.Contains(out, "one@4.service: every eligible machine runs a unit it conflicts with") {
			t.Errorf("start of 4 conflicting units on 3 machines: %v\n%s", err, out)
		}
		got := map[string]string{}
		for _, u := range units(t) {
			got[u.Unit] = u.Machine
		}
		if got["in-n2.service"] != "n2" || got["next-to.service"] != "n2" {
			t.Errorf("MachineMetadata=az=n2 on %q, its MachineOf follower on %q; want n2 for both", got["in-n2.service"], got["next-to.service"])
		}
		if got["everywhere.service"] != "n1,n2,n3" {
			t.Errorf("the global unit on %q, want n1,n2,n3", got["everywhere.service"])
		}
		on := map[string]bool{}
		for i := 1; i <= 3; i++ {
			on[got[fmt.Sprintf("one@%d.service", i)]] = true
		}
		if len(on) != 3 || got["one@4.service"] != "" {
			t.Errorf("conflicting units on %v (one@4 on %q), want one per machine and one@4 unplaced", on, got["one@4.service"])
		}
		// Replaces: the new unit takes the old one's machine, the old moves.
		fleet(t, "start", write("old.service", ""))
		was := ""
		for _, u := range units(t) {
			if u.Unit == "old.service" {
				was = u.Machine
			}
		}
		fleet(t, "start", write("new.service", "Replaces=old.service"))
		c.waitFor("old.service moved off its machine", 20*time.Second, func() bool {
			for _, u := range polled() {
				got[u.Unit] = u.Machine
			}
			return got["old.service"] != was
		})
		if was == "" || got["new.service"] != was || got["old.service"] == was || got["old.service"] == "" {
			t.Errorf("old.service was on %q; after new.service (Replaces=old.service): new on %q, old on %q; want new on %q and old moved",
				was, got["new.service"], got["old.service"], was)
		}
		// The global unit runs on every machine (its executors start it there).
		c.waitFor("everywhere.service active on every node", 20*time.Second, func() bool {
			for _, n := range c.Nodes {
				if out, _ := n.Try("systemctl", "is-active", "everywhere.service"); strings.TrimSpace(out) != "active" {
					return false
				}
			}
			return true
		})
	})

	t.Run("5 kill an instance: systemd restarts it in place", func(t *testing.T) {
		c.Use(t)
		var victim fleetUnit
		for _, u := range units(t) {
			if u.Unit == "demo@2.service" {
				victim = u
			}
		}
		node := c.node(victim.Machine)
		load := c.StartLoad(12 * time.Second)
		time.Sleep(2 * time.Second)
		node.Exec(t, "systemctl", "kill", "-s", "KILL", "--kill-whom=main", "demo@2.service")
		start := time.Now()
		c.waitFor("the killed instance back", 30*time.Second, func() bool {
			out, _ := node.Try("systemctl", "is-active", "demo@2.service")
			return strings.TrimSpace(out) == "active" && c.Live() == 10
		})
		heal := time.Since(start)
		r, err := load.Wait()
		if err != nil {
			t.Fatal(err)
		}
		record("fleet: kill one instance", r, heal)
		if r.Failed > 1 {
			t.Errorf("%d of %d requests failed around one kill, want at most 1: %v", r.Failed, r.Total, r.Errors)
		}
		if after := units(t); len(after) == 0 {
			t.Fatal("no units listed")
		}
	})

	t.Run("6 partition a node past its lease: its units move, then run once", func(t *testing.T) {
		c.Use(t)
		start := time.Now()
		c.Partition(n2, true)
		c.waitFor("n2's units placed on n1 and n3", 40*time.Second, func() bool {
			us := polled()
			if len(us) == 0 {
				return false
			}
			for _, u := range us {
				if strings.HasPrefix(u.Unit, "demo@") && u.Machine == "n2" {
					return false
				}
			}
			return true
		})
		c.Partition(n2, false)
		// Healed: n2's executor stops what is no longer placed there, its
		// old copies' hooks leave the new copies' records alone, and every
		// unit runs on exactly one machine, routed.
		c.waitFor("each demo unit active on exactly one node, 10 routed", 60*time.Second, func() bool {
			count := map[string]int{}
			for _, n := range c.Nodes {
				out, _ := n.Try("systemctl", "list-units", "--state=active", "--no-legend", "--plain", "demo@*")
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					if f := strings.Fields(line); len(f) > 0 {
						count[f[0]]++
					}
				}
			}
			for i := 1; i <= 10; i++ {
				if count[fmt.Sprintf("demo@%d.service", i)] != 1 {
					return false
				}
			}
			return len(count) == 10 && c.Live() == 10
		})
		record("fleet: partition n2 past the lease, heal", LoadResult{}, time.Since(start))
	})

	t.Run("7 a node is stopped cleanly: its units move at once", func(t *testing.T) {
		c.Use(t)
		fleetCleanStop(t, c, fleetCtl{n1}, n3)
	})

	t.Run("8 passivate through berth fleet, a node leaves, wake", func(t *testing.T) {
		c.Use(t)
		fleetPassivation(t, c, fleetCtl{n1}, n2, n3)
	})

	t.Run("9 status and journal of units here and on other machines (ssh)", func(t *testing.T) {
		c.Use(t)
		fleetStatusJournal(t, c)
	})

	t.Run("10 deploys through berth fleet under load", func(t *testing.T) {
		c.Use(t)
		fleetDeploys(t, c, n1)
	})
}
