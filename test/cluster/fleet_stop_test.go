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

// fleetCtl runs berth fleet on a node and decodes list-units.
type fleetCtl struct{ n *Node }

// units lists the units; a read that fails (etcd electing a leader after
// a member left) is nil, for the caller to ask again.
func (f fleetCtl) units() []fleetUnit {
	out, err := f.n.Try("/opt/bin/berth", "fleet", "--etcd-request-timeout", "2s", "list-units", "-o", "json")
	var us []fleetUnit
	if err != nil || json.Unmarshal([]byte(strings.TrimSpace(out)), &us) != nil {
		return nil
	}
	return us
}

// demoOn counts the demo units placed on each machine (nil: no answer).
func (f fleetCtl) demoOn() map[string]int {
	us := f.units()
	if us == nil {
		return nil
	}
	m := map[string]int{}
	for _, u := range us {
		if strings.HasPrefix(u.Unit, "demo@") {
			m[u.Machine]++
		}
	}
	return m
}

// activeDemo counts, per demo unit, the nodes where systemd runs it.
func (c *Cluster) activeDemo(nodes ...*Node) map[string]int {
	count := map[string]int{}
	for _, n := range nodes {
		out, _ := n.Try("systemctl", "list-units", "--state=active,activating", "--no-legend", "--plain", "demo@*")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				count[f[0]]++
			}
		}
	}
	return count
}

// eachOnce reports whether the demo units 1..10 each run on exactly one of
// the nodes.
func eachOnce(count map[string]int) bool {
	for i := 1; i <= 10; i++ {
		if count[fmt.Sprintf("demo@%d.service", i)] != 1 {
			return false
		}
	}
	return len(count) == 10
}

// fleetCleanStop powers a node off cleanly under load: its agent gives
// up its lease as it stops, so its units are placed elsewhere without
// waiting for the lease to expire, and the other routers fail nothing.
func fleetCleanStop(t *testing.T, c *Cluster, f fleetCtl, victim *Node) {
	var others []*Node
	for _, n := range c.Nodes {
		if n != victim {
			others = append(others, n)
		}
	}
	load := c.StartLoad(40*time.Second, others...)
	time.Sleep(time.Second)
	start := time.Now()
	stopped := make(chan time.Duration, 1)
	go func() { c.StopNode(victim); stopped <- time.Since(start) }()
	c.waitFor(victim.Name+"'s units placed elsewhere", 40*time.Second, func() bool {
		pm := f.demoOn()
		return pm != nil && pm[victim.Name] == 0 && pm[others[0].Name]+pm[others[1].Name] == 10
	})
	placed := time.Since(start)
	c.waitFor("10 live instances again", 60*time.Second, func() bool {
		return c.Live() == 10 && eachOnce(c.activeDemo(others...))
	})
	heal := time.Since(start)
	took := <-stopped
	t.Logf("%s stopped cleanly (poweroff took %s): its units placed elsewhere after %s, all 10 live after %s (agent lease TTL 10s)",
		victim.Name, took.Round(100*time.Millisecond), placed.Round(100*time.Millisecond), heal.Round(100*time.Millisecond))
	r, err := load.Wait()
	if err != nil {
		t.Fatal(err)
	}
	record("fleet: clean stop of a node, units rescheduled", r, heal)
	if r.Failed > 0 {
		t.Errorf("%d of %d requests to the other routers failed: %v", r.Failed, r.Total, r.Errors)
	}
	c.RestartNode(victim, nil)
}

// fleetPassivation passivates the app through berth fleet (berth passivate
// --driver berth, as the platform's timer on this cluster runs it), lets
// a node change hands while the app sleeps, and wakes it with one request.
func fleetPassivation(t *testing.T, c *Cluster, f fleetCtl, victim, waker *Node) {
	n1 := f.n
	apply := func(app spec.App, file string) {
		b, _ := json.Marshal(&app)
		os.WriteFile(filepath.Join(n1.dirs.etc, file), b, 0o644)
		n1.Exec(t, "/opt/bin/berth", "apply", "/etc/berth/"+file)
	}
	idle := *c.app
	idle.IdleTimeout = spec.Duration(5 * time.Second)
	apply(idle, "demo-idle.json")
	defer apply(*c.app, "demo-again.json") // no idle timeout: the platform's timer leaves it alone
	time.Sleep(16 * time.Second)           // idle past the timeout, and past the routers' access writes
	start := time.Now()
	if out := n1.Exec(t, "/opt/bin/berth", "passivate", "--driver", "berth", "--min-uptime", "1s"); !strings.Contains(out, "passivate") {
		t.Fatalf("passivation pass: %s", out)
	}
	c.waitFor("every node's demo units to stop", 30*time.Second, func() bool {
		return len(c.activeDemo(c.Nodes...)) == 0 && c.Live() == 0
	})
	passivated := time.Since(start)
	// The scheduler's view agrees with berth status: placed, inactive (the
	// executors report a state at their next pass).
	c.waitFor("list-units: every demo unit placed and inactive", 10*time.Second, func() bool {
		us := f.units()
		for _, u := range us {
			if strings.HasPrefix(u.Unit, "demo@") && (u.Machine == "" || u.Active != "inactive") {
				return false
			}
		}
		return len(us) > 0
	})
	if out := n1.Exec(t, "/opt/bin/berth", "status"); !strings.Contains(out, "passivated") || !strings.Contains(out, "0/0") {
		t.Errorf("berth status while passivated:\n%s", out)
	}

	// A node leaves while the app sleeps: its units are placed elsewhere
	// and stay stopped there.
	go c.StopNode(victim)
	c.waitFor(victim.Name+"'s units placed elsewhere", 40*time.Second, func() bool {
		pm := f.demoOn()
		return pm != nil && pm[victim.Name] == 0 && len(f.units()) > 0
	})
	time.Sleep(3 * time.Second) // the executors' passes (each second)
	if running := c.activeDemo(n1, waker); len(running) > 0 || c.Live() > 0 {
		t.Errorf("units started while the app is passivated, after %s left: %v", victim.Name, running)
	}

	// One request wakes the app: each unit starts once, where it is placed.
	out, err := InHub("curl", "-s", "-D", "-", "-H", "Host: demo.localhost", "--max-time", "60", "http://"+waker.IP+"/status")
	if err != nil || !strings.Contains(out, "200 OK") || !strings.Contains(strings.ToLower(out), "x-berth-cold-start") {
		t.Fatalf("wake request: %v\n%s", err, out)
	}
	c.waitFor("all 10 instances back, each on one node", 60*time.Second, func() bool {
		return c.Live() == 10 && eachOnce(c.activeDemo(n1, waker))
	})
	record("fleet: passivate, a node leaves, wake by one request", LoadResult{Total: 1}, passivated)
	if out := n1.Exec(t, "/opt/bin/berth", "status"); !strings.Contains(out, "started") || !strings.Contains(out, "10/10") {
		t.Errorf("berth status after the wake:\n%s", out)
	}
	c.RestartNode(victim, nil)
	time.Sleep(3 * time.Second)
	if running := c.activeDemo(victim); len(running) > 0 {
		t.Errorf("%s runs %v after it came back; nothing is placed there", victim.Name, running)
	}
}
