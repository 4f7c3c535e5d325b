package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/spec"
)

func TestMain(m *testing.M) {
	if os.Getenv("BERTH_LOADGEN") == "1" {
		loadMain()
		os.Exit(0)
	}
	if os.Getenv("BERTH_ETCDPROBE") == "1" {
		probeMain()
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
		c.Use(t)
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
		c.Use(t)
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

	t.Run("3 stop a whole node and bring it back", func(t *testing.T) {
		c.Use(t)
		n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
		load := c.StartLoad(20*time.Second, n1, n2)
		time.Sleep(time.Second)
		start := time.Now()
		c.StopNode(n3)
		gone := c.waitFor("n3's instances to leave the routes", 20*time.Second, func() bool { return c.Live() == 7 })
		t.Logf("n3's instances left the routes %s after the stop began", gone.Round(100*time.Millisecond))
		c.RestartNode(n3, []int{8, 9, 10})
		c.waitFor("n3 to re-register its instances", 60*time.Second, func() bool { return c.Live() == 10 })
		heal := time.Since(start)
		r, err := load.Wait()
		if err != nil {
			t.Fatal(err)
		}
		record("stop n3 (container and etcd member), restart it", r, heal)
		if r.Failed > 0 {
			t.Errorf("%d of %d requests to the other routers failed: %v", r.Failed, r.Total, r.Errors)
		}
	})

	t.Run("4 partition a node longer than the lease TTL", func(t *testing.T) {
		c.Use(t)
		n1, n2 := c.Nodes[0], c.Nodes[1]
		c.Partition(n2, true)
		start := time.Now()
		c.waitFor("n2's instances to expire on the majority side", 40*time.Second, func() bool {
			r, err := c.RoutesOn(n1)
			return err == nil && len(r) == 7
		})
		time.Sleep(3 * time.Second) // well past the TTL
		c.Partition(n2, false)
		var want []string
		c.waitFor("every node to agree on 10 live instances", 60*time.Second, func() bool {
			var views [][]string
			for _, n := range c.Nodes {
				r, err := c.RoutesOn(n)
				if err != nil || len(r) != 10 {
					return false
				}
				views = append(views, r)
			}
			want = views[0]
			return sameSet(views[0], views[1]) && sameSet(views[0], views[2])
		})
		heal := time.Since(start)
		// No stale route on any router: each one answers from live instances only.
		load := c.StartLoad(5 * time.Second)
		r, err := load.Wait()
		if err != nil {
			t.Fatal(err)
		}
		record("partition n2 (link down 10s+), heal", r, heal)
		if r.Failed > 0 {
			t.Errorf("%d of %d requests failed after the heal: %v (routes %v)", r.Failed, r.Total, r.Errors, want)
		}
	})

	t.Run("5 passivate on every node, wake once", func(t *testing.T) {
		c.Use(t)
		n1, n3 := c.Nodes[0], c.Nodes[2]
		app := *c.app
		app.IdleTimeout = spec.Duration(5 * time.Second)
		b, _ := json.Marshal(&app)
		os.WriteFile(filepath.Join(n1.dirs.etc, "demo-idle.json"), b, 0o644)
		n1.Exec(t, "/opt/bin/berth", "apply", "/etc/berth/demo-idle.json")
		time.Sleep(16 * time.Second) // idle past the timeout, and past the routers' access writes
		start := time.Now()
		out := n1.Exec(t, "/opt/bin/berth", "passivate", "--min-uptime", "1s")
		if !strings.Contains(out, "passivate") {
			t.Fatalf("passivation pass: %s", out)
		}
		c.waitFor("every node's units to stop", 30*time.Second, func() bool {
			for _, n := range c.Nodes {
				out, _ := n.Try("systemctl", "list-units", "--state=active", "--no-legend", "demo@*")
				if strings.TrimSpace(out) != "" {
					return false
				}
			}
			return c.Live() == 0
		})
		passivated := time.Since(start)
		// One request on n3's router wakes the app on every node, once.
		out, err := InHub("curl", "-s", "-D", "-", "-H", "Host: demo.localhost", "--max-time", "60", "http://"+n3.IP+"/status")
		if err != nil || !strings.Contains(out, "200 OK") || !strings.Contains(strings.ToLower(out), "x-berth-cold-start") {
			t.Fatalf("wake request: %v\n%s", err, out)
		}
		c.waitFor("all 10 instances back", 60*time.Second, func() bool { return c.Live() == 10 })
		wakes := 0
		for _, n := range c.Nodes {
			m, _ := n.Try("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9080; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; grep '^berth_wakes_total' <&3 || true")
			var v float64
			fmt.Sscanf(strings.TrimPrefix(strings.TrimSpace(m), "berth_wakes_total "), "%g", &v)
			wakes += int(v)
		}
		record("passivate (units stopped on all nodes), wake by one request", LoadResult{Total: 1}, passivated)
		if wakes != 1 {
			t.Errorf("%d wakes across the routers, want exactly 1", wakes)
		}
	})
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}
