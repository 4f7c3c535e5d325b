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

// history is "berth history demo -o json" as the scenario reads it.
type history struct {
	Releases []struct {
		Gen     int64  `json:"gen"`
		Version string `json:"version"`
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
	} `json:"releases"`
	Rollout *struct {
		To      int64  `json:"to"`
		Phase   string `json:"phase"`
		Healthy int    `json:"healthy"`
	} `json:"rollout"`
}

// fleetDeploys deploys new versions of the demo app across the cluster
// (the scheduler agents' deployer, through berth fleet) under load on
// every router: a rolling deploy, a version that never becomes healthy
// (rolled back), and a deploy whose deployer is killed half-way (another
// agent takes over and finishes it). No request fails.
func fleetDeploys(t *testing.T, c *Cluster, n1 *Node) {
	write := func(version, health string) string {
		app := *c.app
		app.Version = version
		app.Health = &spec.Health{HTTP: health, Interval: spec.Duration(time.Second), StartPeriod: spec.Duration(20 * time.Second)}
		b, _ := json.Marshal(&app)
		name := "demo-" + version + ".json"
		os.WriteFile(filepath.Join(n1.dirs.etc, name), b, 0o644)
		return "/etc/berth/" + name
	}
	berth := func(args ...string) (string, error) {
		return n1.Try(append([]string{"/opt/bin/berth"}, append(args, "--etcd-request-timeout", "2s")...)...)
	}
	hist := func() history {
		var h history
		out, err := berth("history", "demo", "-o", "json")
		if err == nil {
			json.Unmarshal([]byte(strings.TrimSpace(out)), &h)
		}
		return h
	}
	versions := func() map[string]int {
		out, _ := InHub("sh", "-c", fmt.Sprintf("for i in $(seq 20); do curl -s -H 'Host: demo.localhost' http://%s/status; echo; done", n1.IP))
		m := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var s struct{ Version string }
			if json.Unmarshal([]byte(line), &s) == nil {
				m[s.Version]++
			}
		}
		return m
	}
	load := c.StartLoad(10 * time.Minute)

	// Rolling, two at a time.
	start := time.Now()
	if out, err := berth("deploy", write("0.2.0", "/health"), "--max-surge", "2", "--wait"); err != nil {
		t.Fatalf("deploy 0.2.0: %v\n%s", err, out)
	}
	rolled := time.Since(start)
	if v := versions(); v["0.2.0"] != 20 {
		t.Errorf("after the rolling deploy, versions %v, want 0.2.0 only", v)
	}
	if out := n1.Exec(t, "/opt/bin/berth", "fleet", "list-units"); !strings.Contains(out, "demo.2@10.service") || strings.Contains(out, "demo@1.service") {
		t.Errorf("after the deploy, berth fleet list-units:\n%s", out)
	}

	// Never healthy: rolled back by the deployer, 0.2.0 keeps serving.
	out, err := berth("deploy", write("0.3.0", "/never-healthy"), "--timeout", "5s", "--wait")
	if err == nil || !strings.Contains(out, "rolled back") {
		t.Fatalf("deploy of a never-healthy version: %v\n%s", err, out)
	}
	if v := versions(); v["0.2.0"] != 20 {
		t.Errorf("after the rollback, versions %v, want 0.2.0 only", v)
	}

	// The deploying agent dies half-way: the next leader finishes.
	if out, err := berth("deploy", write("0.4.0", "/health")); err != nil {
		t.Fatalf("deploy 0.4.0: %v\n%s", err, out)
	}
	c.waitFor("0.4.0 half-way (3 new healthy)", 60*time.Second, func() bool {
		h := hist()
		return h.Rollout != nil && h.Rollout.Healthy >= 3
	})
	var leader *Node
	for _, n := range c.Nodes {
		// The agent whose last word on the election is "leading" leads.
		out, _ := n.Try("sh", "-c", "journalctl -u berth-agent --no-pager -o cat | grep -o 'deployer: \\(leading\\|no longer leading\\)' | tail -1")
		if strings.TrimSpace(out) == "deployer: leading" {
			leader = n
		}
	}
	if leader == nil {
		t.Fatal("no agent logged leading the deployer")
	}
	leader.Exec(t, "systemctl", "kill", "-s", "KILL", "--kill-whom=main", "berth-agent.service")
	c.waitFor("0.4.0 done after the deployer's death", 120*time.Second, func() bool {
		h := hist()
		return h.Rollout != nil && h.Rollout.Phase == "done" && h.Rollout.To == 4
	})
	c.waitFor("0.4.0 answering everywhere", 30*time.Second, func() bool { return versions()["0.4.0"] == 20 })
	load.Stop()
	r, err := load.Wait()
	if err != nil {
		t.Fatal(err)
	}
	record("fleet: rolling deploy, a rolled-back one, one whose deployer died", r, rolled)
	t.Logf("rolling deploy of 10 instances (surge 2) in %s; %d requests during the deploys, %d failed",
		rolled.Round(100*time.Millisecond), r.Total, r.Failed)
	if r.Failed > 0 {
		t.Errorf("%d of %d requests failed during the deploys: %v", r.Failed, r.Total, r.Errors)
	}
	h := hist()
	outcomes := map[string]string{}
	for _, rel := range h.Releases {
		outcomes[rel.Version] = rel.Outcome
	}
	if outcomes["0.1.0"] != "superseded" || outcomes["0.2.0"] != "superseded" || outcomes["0.3.0"] != "rolled-back" || outcomes["0.4.0"] != "live" {
		t.Errorf("release outcomes %v", outcomes)
	}
}
