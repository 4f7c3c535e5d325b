package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if os.Getenv("BERTH_LOADGEN") == "1" {
		loadMain()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// report collects the scenario table printed at the end.
var report []string

func record(scenario string, r LoadResult, heal time.Duration) {
	report = append(report, fmt.Sprintf("| %s | %d | %d | %s |", scenario, r.Total, r.Failed, heal.Round(100*time.Millisecond)))
}

// TestCluster runs the seed's walkthrough on three systemd nodes.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("the cluster takes a minute to start")
	}
	c := Start(t, map[string][]int{"n1": {1, 2, 3, 4}, "n2": {5, 6, 7}, "n3": {8, 9, 10}})
	defer func() {
		t.Log("| scenario | requests | failed | time to heal |\n|---|---|---|---|\n" + strings.Join(report, "\n"))
	}()

	t.Run("1 every router and dnsd serve every node's instances", func(t *testing.T) {
		for _, n := range c.Nodes {
			seen := map[string]bool{}
			for range 30 {
				out, err := InHub("curl", "-sf", "-H", "Host: demo.localhost", "http://"+n.IP+"/status")
				if err != nil {
					t.Fatalf("router on %s: %v %s", n.Name, err, out)
				}
				var s struct{ Host string }
				json.Unmarshal([]byte(out), &s)
				seen[s.Host] = true
			}
			if len(seen) != 3 {
				t.Errorf("router on %s reached instances on %v, want all 3 nodes", n.Name, seen)
			}
			out, err := InHub("dig", "@"+n.IP, "+short", "+tcp", "+time=2", "+tries=1", "_demo._tcp.service.berth", "SRV")
			if err != nil || len(strings.Fields(out)) != 40 {
				t.Errorf("dnsd on %s: SRV answers %q (%v), want 10", n.Name, out, err)
			}
		}
	})

	t.Run("2 kill an instance", func(t *testing.T) {
		load := c.StartLoad(12 * time.Second)
		time.Sleep(2 * time.Second)
		before := c.Routes()
		n1 := c.Nodes[0]
		n1.Exec(t, "systemctl", "kill", "-s", "KILL", "--kill-whom=main", "demo@2.service")
		start := time.Now()
		c.waitFor("the killed instance's route to go", 10*time.Second, func() bool { return len(c.Routes()) < len(before) })
		c.waitFor("systemd to restart it and its route to return", 30*time.Second, func() bool { return c.Live() == 10 })
		heal := time.Since(start)
		r, err := load.Wait()
		if err != nil {
			t.Fatal(err)
		}
		record("kill one instance", r, heal)
		if r.Failed > 1 {
			t.Errorf("%d of %d requests failed around one kill, want at most 1: %v", r.Failed, r.Total, r.Errors)
		}
	})
}
