package engines

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/enginetest"
)

// registrar checks the node agent's Docker registrar (berth-agent.service,
// on the engine's socket) against the real engine: registrator's
// conventions on containers berth's units did not start, deregistration
// on stop, and a resync after the engine restarts; and a berth unit's
// instance coming back after the engine restart.
func registrar(t *testing.T, n *enginetest.Node) {
	run := func(name string, args ...string) {
		t.Helper()
		argv := append([]string{"docker", "run", "-d", "--name", name}, args...)
		n.Exec(append(argv, image)...)
	}
	// at reports where id of service app is registered ("" if not, or not
	// with tags).
	at := func(app, id string, tags ...string) string {
		in := instance(t, n, app, id)
		if in == nil || !slices.Equal(in.Tags, tags) {
			return ""
		}
		return in.Addr
	}
	port := func(container, p string) string {
		if hp := publishedPort(n, "docker", container, p); hp != "" {
			return "127.0.0.1:" + hp
		}
		return ""
	}
	run("reg-a", "--restart=always", "-e", "SERVICE_NAME=alpha", "-e", "SERVICE_TAGS=http,public", "-p", "8080/tcp")
	run("reg-b", "-e", "SERVICE_8080_NAME=beta-web", "-e", "SERVICE_9090_NAME=beta-metrics", "-e", "SERVICE_9090_TAGS=prom",
		"-p", "8080/tcp", "-p", "9090/tcp")
	run("reg-c", "-e", "SERVICE_IGNORE=1", "-e", "SERVICE_NAME=gamma", "-p", "8080/tcp")
	run("reg-d", "-e", "SERVICE_NAME=delta", "-p", "8080/tcp")
	n.WaitFor("the containers registered", 30*time.Second, func() bool {
		return at("alpha", "node1:reg-a:8080", "http", "public") == port("reg-a", "8080/tcp") &&
			at("beta-web", "node1:reg-b:8080") == port("reg-b", "8080/tcp") &&
			at("beta-metrics", "node1:reg-b:9090", "prom") == port("reg-b", "9090/tcp") &&
			at("delta", "node1:reg-d:8080") == port("reg-d", "8080/tcp") && port("reg-d", "8080/tcp") != ""
	})
	if in := instance(t, n, "gamma", "node1:reg-c:8080"); in != nil {
		t.Fatalf("SERVICE_IGNORE container registered: %+v", in)
	}
	// The registration routes: "alpha.<anything>" reaches app alpha.
	n.WaitFor("alpha routed", 30*time.Second, func() bool { return routed(n, "alpha.test") == 200 })

	n.Exec("docker", "stop", "-t", "1", "reg-b")
	n.WaitFor("reg-b deregistered on stop", 30*time.Second, func() bool {
		return instance(t, n, "beta-web", "node1:reg-b:8080") == nil && instance(t, n, "beta-metrics", "node1:reg-b:9090") == nil
	})

	// A berth unit of the docker runtime runs beside them.
	app, y := appSpec(t, "dunit", "docker", image, "never")
	install(t, n, app, y)
	startUnit(t, n, "dunit@1.service")
	unitAt := func() string {
		in := instance(t, n, "dunit", "1")
		if in == nil {
			return ""
		}
		return in.Addr
	}
	n.WaitFor("dunit@1 registered", 30*time.Second, func() bool { return unitAt() != "" && unitAt() == port("dunit-1", "8080/tcp") })
	unitStarted := unitProp(n, "dunit@1.service", "ActiveEnterTimestampMonotonic")

	// The engine restarts: reg-a comes back (restart policy), on a port
	// the engine may choose anew; reg-d does not. The agent reconnects and
	// takes the engine's list as the truth. The berth unit is restarted
	// with the engine (Requires=docker.service) and registered again.
	before := port("reg-a", "8080/tcp")
	n.Exec("systemctl", "restart", "docker.service")
	n.WaitFor("the registrar's resync after the engine restart", 60*time.Second, func() bool {
		p := port("reg-a", "8080/tcp")
		return p != "" && at("alpha", "node1:reg-a:8080", "http", "public") == p &&
			instance(t, n, "delta", "node1:reg-d:8080") == nil
	})
	n.WaitFor("dunit@1 restarted with the engine and registered", 60*time.Second, func() bool {
		return unitProp(n, "dunit@1.service", "ActiveEnterTimestampMonotonic") != unitStarted &&
			unitProp(n, "dunit@1.service", "ActiveState") == "active" && unitAt() != "" && unitAt() == port("dunit-1", "8080/tcp")
	})
	n.WaitFor("dunit routed after the engine restart", 30*time.Second, func() bool { return routed(n, "dunit.test") == 200 })
	n.Exec("systemctl", "stop", "dunit@1.service")
	t.Logf("reg-a published at %s before the engine restart, %s after", before, port("reg-a", "8080/tcp"))
	if j := n.Journal("berth-agent.service"); !strings.Contains(j, "docker engine unavailable") {
		t.Errorf("the agent's journal does not show the engine going away:\n%s", j)
	}
	n.WaitFor("alpha routed after the engine restart", 30*time.Second, func() bool { return routed(n, "alpha.test") == 200 })
	n.Exec("docker", "rm", "-f", "reg-a", "reg-b", "reg-c", "reg-d")
	n.WaitFor("alpha deregistered", 30*time.Second, func() bool { return instance(t, n, "alpha", "node1:reg-a:8080") == nil })
}
