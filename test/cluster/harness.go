// Package cluster is a real berth cluster on one machine: three systemd
// nodes (systemd-nspawn containers on one shared read-only root, each in
// its own network namespace on a private bridge), one etcd member per node
// (Debian's etcd, as a systemd unit), and on every node the platform units
// that "berth render --platform" writes, linked and started through
// systemd. The app is the demo app as an exec-runtime template unit.
// StartSecureFleet runs it on a TLS + auth etcd, as the AWS stack's nodes
// get it (secure.go).
//
// The test addresses (10.213.0.0/24) exist only inside the namespaces the
// harness creates; the test talks to the nodes from the hub namespace.
package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/pki"
	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/internal/systemdtest"
	"github.com/berthproject/berth/units"
)

// Hub is the namespace of the bridge and of the test's clients.
const Hub = "berth-hub"

// HubIP is the clients' address on the bridge.
const HubIP = "10.213.0.2"

// Node is one systemd container.
type Node struct {
	Name string // n1, n2, n3
	IP   string
	NS   string // network namespace
	C    *systemdtest.Container
	dirs nodeDirs
}

type nodeDirs struct{ etc, units, etcd string }

// Cluster is the harness.
type Cluster struct {
	t     testing.TB // where failures are reported (the current subtest)
	root  testing.TB // what owns the containers: the whole test
	Nodes []*Node
	berth string
	// etcd is the etcd server binary of the members: Debian's (3.4, the
	// last with the v2 API fleet needs) or, for the fleet cluster, the
	// etcd release berth is built against (test/cluster/etcdmember).
	etcd string
	app  *spec.App
	// fleet: the agents run berth fleet's scheduler and executor; the demo
	// units are placed by berth fleet, not started by the harness.
	fleet bool
	// secure: etcd with TLS, client certificates and auth (secure.go);
	// ca issued every certificate.
	secure bool
	ca     *pki.CA
}

func run(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// InHub runs a command in the hub namespace.
func InHub(argv ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", Hub}, argv...)...).CombinedOutput()
	return string(out), err
}

// cleanupNetwork removes namespaces left by an earlier run.
func cleanupNetwork() {
	for _, ns := range []string{Hub, "berth-n1", "berth-n2", "berth-n3"} {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// Start builds berth, wires the network, boots the nodes, forms the etcd
// cluster, starts the platform and the app's instances (ids per node), and
// tears everything down when the test ends.
func Start(t *testing.T, instances map[string][]int) *Cluster {
	t.Helper()
	return start(t, &Cluster{t: t, root: t}, instances)
}

// StartFleet starts the cluster with every agent a candidate for berth
// fleet's scheduler (metadata role=worker, az=<node>) and no demo
// instance: the test places them with berth fleet.
func StartFleet(t *testing.T) *Cluster {
	t.Helper()
	return start(t, &Cluster{t: t, root: t, fleet: true}, nil)
}

func start(t *testing.T, c *Cluster, instances map[string][]int) *Cluster {
	t.Helper()
	start := time.Now()
	c.berth = filepath.Join(t.TempDir(), "berth")
	build := exec.Command("go", "build", "-o", c.berth, "../../cmd/berth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build berth: %v\n%s", err, out)
	}
	c.etcd = "/usr/bin/etcd"
	if c.fleet {
		c.etcd = filepath.Join(t.TempDir(), "etcd")
		build := exec.Command("go", "build", "-o", c.etcd, "./etcdmember")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build etcd: %v\n%s", err, out)
		}
	}
	// One cluster per machine at a time: the namespaces have fixed names.
	lock, err := os.OpenFile("/run/lock/berth-cluster-test.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	cleanupNetwork()
	t.Cleanup(cleanupNetwork)
	run(t, "ip", "netns", "add", Hub)
	hub := func(argv ...string) { run(t, append([]string{"ip", "netns", "exec", Hub}, argv...)...) }
	hub("ip", "link", "set", "lo", "up")
	hub("ip", "link", "add", "br0", "type", "bridge")
	hub("ip", "addr", "add", HubIP+"/24", "dev", "br0")
	hub("ip", "link", "set", "br0", "up")

	var cluster []string
	for i := 1; i <= 3; i++ {
		n := &Node{Name: fmt.Sprintf("n%d", i), IP: fmt.Sprintf("10.213.0.1%d", i), NS: fmt.Sprintf("berth-n%d", i)}
		c.Nodes = append(c.Nodes, n)
		cluster = append(cluster, fmt.Sprintf("%s=%s://%s:2380", n.Name, c.scheme(), n.IP))
		run(t, "ip", "netns", "add", n.NS)
		hub("ip", "link", "add", "v"+n.Name, "type", "veth", "peer", "name", "eth0", "netns", n.NS)
		hub("ip", "link", "set", "v"+n.Name, "master", "br0", "up")
		in := func(argv ...string) { run(t, append([]string{"ip", "netns", "exec", n.NS}, argv...)...) }
		in("ip", "link", "set", "lo", "up")
		in("ip", "addr", "add", n.IP+"/24", "dev", "eth0")
		in("ip", "link", "set", "eth0", "up")
	}

	// The app, as an operator would write it, and every node's units.
	apps, err := spec.ParseFile("../../examples/demo-exec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.app = apps[0]
	c.app.Instances = 10
	c.app.IdleTimeout = 0
	c.app.Restart.Delay = spec.Duration(time.Second)
	appUnits, err := units.Render(c.app, units.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := units.Options{}
	if c.fleet {
		opts.PassivateDriver = "berth" // passivation through berth fleet's executors
	}
	platform, err := units.Platform(opts)
	if err != nil {
		t.Fatal(err)
	}
	specJSON, _ := json.Marshal(c.app)
	var secure *secureNode
	etcdTLS := ""
	if c.secure {
		c.ca = makePKI(t, filepath.Join(t.TempDir(), "pki"), c.Nodes)
		if secure, err = renderSecure(opts, strings.Join(cluster, ",")); err != nil {
			t.Fatal(err)
		}
		etcdTLS = " " + etcdTLSFlags
	}
	for _, n := range c.Nodes {
		n.dirs = nodeDirs{etc: t.TempDir(), units: t.TempDir(), etcd: t.TempDir()}
		env := fmt.Sprintf("BERTH_ETCD_ENDPOINTS=%s://127.0.0.1:2379\nBERTH_ADVERTISE_IP=%s\nBERTH_NODE=%s\nBERTH_ROUTER_ID=%s\n", c.scheme(), n.IP, n.Name, n.Name)
		if c.fleet {
			env += fmt.Sprintf("BERTH_SCHEDULER=true\nBERTH_METADATA=role=worker,az=%s\n", n.Name)
		}
		if c.secure {
			env += strings.Join(secure.env, "\n") + "\n"
			c.writeSecure(n, secure)
		}
		os.WriteFile(filepath.Join(n.dirs.etc, "berth.env"), []byte(env), 0o644)
		os.WriteFile(filepath.Join(n.dirs.etc, "demo.json"), specJSON, 0o644)
		for _, f := range append(append([]units.File{}, appUnits...), platform...) {
			os.WriteFile(filepath.Join(n.dirs.units, f.Name), f.Content, 0o644)
		}
		// etcd's default heartbeat and election timeout (as on Flatcar): the
		// test's earlier 50/500 ms elected new leaders spuriously when the
		// machine was loaded, and cut agents' leases mid-scenario.
		etcd := fmt.Sprintf(`[Unit]
Description=etcd member %[1]s (test cluster)
[Service]
ExecStart=/usr/local/bin/etcd --name %[1]s --data-dir /var/lib/etcd --listen-client-urls %[4]s://%[2]s:2379,%[4]s://127.0.0.1:2379 --advertise-client-urls %[4]s://%[2]s:2379 --listen-peer-urls %[4]s://%[2]s:2380 --initial-advertise-peer-urls %[4]s://%[2]s:2380 --initial-cluster %[3]s --initial-cluster-state new --initial-cluster-token berth-test --heartbeat-interval 100 --election-timeout 1000 --log-level error%[5]s
Restart=always
RestartSec=1
`, n.Name, n.IP, strings.Join(cluster, ","), c.scheme(), etcdTLS)
		os.WriteFile(filepath.Join(n.dirs.units, "etcd-member.service"), []byte(etcd), 0o644)
	}
	for _, n := range c.Nodes {
		c.boot(n)
	}
	for _, n := range c.Nodes {
		c.startEtcd(n)
	}
	c.waitFor("etcd quorum", 60*time.Second, func() bool {
		_, err := c.Nodes[0].Try(c.nodeBerth("status", "--etcd-request-timeout", "1s")...)
		return err == nil
	})
	if c.secure {
		c.startAuth(c.Nodes...)
	}
	for _, n := range c.Nodes {
		c.startPlatform(n)
	}
	if c.secure { // the operator's CLI: no node holds berth-operator
		if out, err := c.Operator("apply", filepath.Join(c.Nodes[0].dirs.etc, "demo.json")); err != nil {
			t.Fatalf("berth apply as berth-operator: %v\n%s", err, out)
		}
	} else {
		c.Nodes[0].Exec(t, "/opt/bin/berth", "apply", "/etc/berth/demo.json")
	}
	for _, n := range c.Nodes {
		for _, id := range instances[n.Name] {
			n.Exec(t, "systemctl", "start", "--no-block", fmt.Sprintf("demo@%d.service", id))
		}
	}
	total := 0
	for _, ids := range instances {
		total += len(ids)
	}
	c.waitFor(fmt.Sprintf("%d live instances", total), 90*time.Second, func() bool { return c.Live() == total })
	t.Logf("cluster up in %s", time.Since(start).Round(100*time.Millisecond))
	return c
}

// Use makes the harness report failures to t (call it at the start of
// each subtest: a subtest must not fail its parent).
func (c *Cluster) Use(t testing.TB) { c.t = t }

// boot starts a node's container in its namespace.
func (c *Cluster) boot(n *Node) {
	n.C = systemdtest.Boot(c.root, "berth-cluster-"+n.Name,
		systemdtest.Bind{Host: c.berth, Container: "/opt/bin/berth", ReadOnly: true},
		systemdtest.Bind{Host: c.etcd, Container: "/usr/local/bin/etcd", ReadOnly: true},
		systemdtest.Bind{Host: n.dirs.etc, Container: "/etc/berth", ReadOnly: true},
		systemdtest.Bind{Host: n.dirs.units, Container: "/run/berth-units", ReadOnly: true},
		systemdtest.Bind{Host: n.dirs.etcd, Container: "/var/lib/etcd"},
		systemdtest.NetNS("/run/netns/"+n.NS))
}

// startEtcd links and starts the node's etcd member.
func (c *Cluster) startEtcd(n *Node) {
	n.Exec(c.t, "systemctl", "link", "/run/berth-units/etcd-member.service")
	if c.secure {
		c.linkSecure(n)
	}
	n.Exec(c.t, "systemctl", "start", "--no-block", "etcd-member.service")
}

// StopNode powers a node off: its units stop, then its etcd member. Any
// process left in the node's network namespace is killed, so that the
// node's next boot finds its ports free.
func (c *Cluster) StopNode(n *Node) {
	n.C.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("ip", "netns", "pids", n.NS).Output()
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("processes %v still in %s after the node stopped", pids, n.NS)
		}
		for _, p := range pids {
			exec.Command("kill", "-9", p).Run()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// KillNode loses a node at once, as a power cut would: every process in
// its network namespace (its systemd, agent, etcd member, units) is
// killed with SIGKILL, nothing stops cleanly.
func (c *Cluster) KillNode(n *Node) {
	out, _ := exec.Command("ip", "netns", "pids", n.NS).Output()
	for _, p := range strings.Fields(string(out)) {
		exec.Command("kill", "-9", p).Run()
	}
	c.StopNode(n) // reaps nspawn, removes the cgroups, kills stragglers
}

// RestartNode boots a stopped node again with its etcd data and starts
// its etcd member, platform and instances, as its boot would.
func (c *Cluster) RestartNode(n *Node, instances []int) {
	c.boot(n)
	c.startEtcd(n)
	c.waitFor(n.Name+" rejoining etcd", 60*time.Second, func() bool {
		_, err := n.Try(c.nodeBerth("status", "--etcd-request-timeout", "1s")...)
		return err == nil
	})
	if c.secure {
		c.startAuth(n) // every boot of a server: idempotent
	}
	c.startPlatform(n)
	for _, id := range instances {
		n.Exec(c.t, "systemctl", "start", "--no-block", fmt.Sprintf("demo@%d.service", id))
	}
}

// Partition cuts a node off the bridge (link down), or heals it.
func (c *Cluster) Partition(n *Node, cut bool) {
	state := "up"
	if cut {
		state = "down"
	}
	run(c.t, "ip", "netns", "exec", Hub, "ip", "link", "set", "v"+n.Name, state)
}

// startPlatform links and starts the platform units on a node.
func (c *Cluster) startPlatform(n *Node) {
	link := units.PlatformUnits
	if !c.fleet {
		link = append([]string{"demo@.service"}, link...) // under fleet, the executor links what it places
	}
	for _, u := range link {
		n.Exec(c.t, "systemctl", "link", "/run/berth-units/"+u)
	}
	if out, err := n.Try("systemctl", "start", "berth-agent.service", "berth-router.socket", "berth-dnsd.socket", "berth-passivate.timer"); err != nil {
		status, _ := n.Try("systemctl", "status", "--no-pager", "-l", "berth-agent.service", "berth-router.socket", "berth-dnsd.socket")
		journal, _ := n.Try("journalctl", "--no-pager", "-n", "40")
		c.t.Fatalf("%s: starting the platform: %v\n%s\n%s\n%s", n.Name, err, out, status, journal)
	}
	c.waitFor(n.Name+" router and dnsd", 30*time.Second, func() bool {
		out, err := n.Try("systemctl", "is-active", "berth-agent.service")
		return err == nil && strings.TrimSpace(out) == "active"
	})
}

// Exec runs a command on the node and fails the test on error.
func (n *Node) Exec(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := n.C.Exec(argv...)
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", n.Name, strings.Join(argv, " "), err, out)
	}
	return out
}

// node is the node named name (n1, n2, n3).
func (c *Cluster) node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	c.t.Fatalf("no node %q", name)
	return nil
}

// Try runs a command on the node.
func (n *Node) Try(argv ...string) (string, error) { return n.C.Exec(argv...) }

func (c *Cluster) waitFor(what string, timeout time.Duration, cond func() bool) time.Duration {
	c.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			var b bytes.Buffer
			for _, n := range c.Nodes {
				units, _ := n.Try("systemctl", "--no-pager", "list-units", "--all", "--no-legend", "demo@*")
				out, _ := n.Try("journalctl", "--no-pager", "-n", "25")
				demo, _ := n.Try("journalctl", "--no-pager", "-n", "30", "-u", "demo@*")
				fmt.Fprintf(&b, "--- %s units:\n%s\n--- %s journal:\n%s\n--- %s demo units:\n%s\n", n.Name, units, n.Name, out, n.Name, demo)
			}
			// The registry as the nodes see it: registered against live
			// instances tells a lost record from one that is not live.
			for _, n := range c.Nodes {
				status, err := n.Try(c.nodeBerth("status", "--etcd-request-timeout", "2s")...)
				if err != nil {
					continue
				}
				routes, _ := n.Try(c.nodeBerth("routes", "--etcd-request-timeout", "2s")...)
				units, _ := n.Try(c.nodeBerth("fleet", "list-units", "--etcd-request-timeout", "2s")...)
				fmt.Fprintf(&b, "--- berth status (on %s):\n%s\n--- berth routes:\n%s\n--- berth fleet list-units:\n%s\n", n.Name, status, routes, units)
				break
			}
			c.t.Fatalf("timed out after %s waiting for %s\n%s", timeout, what, b.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(start)
}
