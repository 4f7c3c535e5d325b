package cluster

import (
	"encoding/json"
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
			pm := perMachine(units(t))
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
			for _, u := range units(t) {
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
}
