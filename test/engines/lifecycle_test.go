package engines

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/enginetest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/units"
)

// image is the demo image both engines get by "import" (no image hub).
const image = "localhost/berth-demo:test"

// TestEngines runs, on one node, each runtime's instance lifecycle, the
// Docker registrar, the private registry through a sealed pullSecret and
// sealed env secrets in containers, in subtests.
func TestEngines(t *testing.T) {
	n := enginetest.StartNode(t)
	start := time.Now()
	n.StartDocker()
	n.ImportImage("docker", image)
	n.ImportImage("podman", image)
	platform, err := units.Platform(units.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range platform {
		writeFile(t, filepath.Join(n.Units, f.Name), string(f.Content))
	}
	for _, u := range []string{"berth-agent.service", "berth-router.service", "berth-router.socket", "berth-passivate.service"} {
		n.Exec("systemctl", "link", "/run/berth-units/"+u)
	}
	n.Exec("systemctl", "start", "berth-agent.service", "berth-router.socket")
	st := sealer(t, n)
	t.Logf("node, docker, images and platform up in %s", time.Since(start).Round(100*time.Millisecond))

	for _, rt := range []string{spec.RuntimeDocker, spec.RuntimePodman} {
		t.Run(rt, func(t *testing.T) {
			n.Use(t)
			lifecycle(t, n, rt)
		})
	}
	t.Run("release2", func(t *testing.T) {
		n.Use(t)
		laterRelease(t, n)
	})
	t.Run("registrar", func(t *testing.T) {
		n.Use(t)
		registrar(t, n)
	})
	t.Run("registry", func(t *testing.T) {
		n.Use(t)
		privateRegistry(t, n, st)
	})
	t.Run("secrets", func(t *testing.T) {
		n.Use(t)
		envSecrets(t, n, st)
	})
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// appSpec is the test app of a runtime: the demo image, one port, a
// health check, a short idle timeout and restart delay.
// Extra lines (such as "pullSecret: NAME") are appended to the YAML.
func appSpec(t testing.TB, name, runtime, image, pull string, extra ...string) (*spec.App, string) {
	t.Helper()
	y := fmt.Sprintf(`apiVersion: berth/v1
name: %s
version: 1.0.0
runtime: %s
image: %s
pull: %s
instances: 1
ports:
  - container: 8080
    tags: [http]
domains: [%s.test]
health:
  http: /health
  interval: 500ms
  startPeriod: 30s
idleTimeout: 3s
stopTimeout: 5s
restart:
  delay: 1s
  burst: 3
  interval: 1m
`, name, runtime, image, pull, name)
	for _, l := range extra {
		y += l + "\n"
	}
	apps, err := spec.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return apps[0], y
}

// install renders an app's template unit into the node, links it and
// publishes the spec (berth apply).
func install(t testing.TB, n *enginetest.Node, app *spec.App, yaml string) {
	t.Helper()
	files, err := units.Render(app, units.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		writeFile(t, filepath.Join(n.Units, f.Name), string(f.Content))
		n.Exec("systemctl", "link", "/run/berth-units/"+f.Name)
	}
	writeFile(t, filepath.Join(n.Units, app.Name+".yaml"), yaml)
	n.Exec("/opt/bin/berth", "apply", "/run/berth-units/"+app.Name+".yaml")
}

// instance returns the registered record of app's instance id, or nil.
func instance(t testing.TB, n *enginetest.Node, app, id string) *registry.Instance {
	t.Helper()
	k, _ := registry.NewKeys("")
	key, err := k.Instance(app, id)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := n.Etcd.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	var in registry.Instance
	if err := json.Unmarshal(resp.Kvs[0].Value, &in); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return &in
}

// unitProp returns one property of a unit in the node.
func unitProp(n *enginetest.Node, unit, prop string) string {
	out, _ := n.Try("systemctl", "show", "-P", prop, unit)
	return strings.TrimSpace(out)
}

// publishedPort asks the engine, as an operator would, which host port the
// container's port ("8080/tcp") is published on.
func publishedPort(n *enginetest.Node, cli, container, port string) string {
	out, err := n.Try(cli, "port", container, port)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if _, p, err := net.SplitHostPort(strings.TrimSpace(line)); err == nil {
			return p
		}
	}
	return ""
}

// containers lists the engine's containers (running or not) named name.
func containers(n *enginetest.Node, cli, name string) string {
	out, _ := n.Try(cli, "ps", "-a", "-q", "--filter", "name=^"+name+"$")
	return strings.TrimSpace(out)
}

// routed asks the node's router (berth-router.socket on port 80) for
// host and returns the status.
func routed(n *enginetest.Node, host string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, _, err := n.Get(ctx, "http://127.0.0.1:80/health", host)
	if err != nil {
		return 0
	}
	return code
}

func lifecycle(t *testing.T, n *enginetest.Node, rt string) {
	name := rt[:1] + "web" // dweb, pweb
	app, y := appSpec(t, name, rt, image, spec.PullNever)
	install(t, n, app, y)
	unit, container, host := name+"@1.service", name+"-1", name+".test"
	registered := func() string {
		in := instance(t, n, name, "1")
		if in == nil || in.State != registry.StateUp {
			return ""
		}
		return in.Addr
	}
	wantAddr := func(what string) string {
		t.Helper()
		var addr string
		n.WaitFor(what, 60*time.Second, func() bool {
			p := publishedPort(n, rt, container, "8080/tcp")
			addr = registered()
			return p != "" && addr == "127.0.0.1:"+p
		})
		return addr
	}

	// Start through systemd: a stale container of the same name, as a
	// crash that skipped ExecStopPost leaves, is cleared by the pre-clean.
	n.Exec(rt, "create", "--name", container, image)
	startUnit(t, n, unit)
	addr := wantAddr("the instance registered at its published port")
	t.Logf("%s registered at %s", unit, addr)
	n.WaitFor("routed by the router", 30*time.Second, func() bool { return routed(n, host) == 200 })

	// Killed: systemd restarts it; the new container is registered where
	// the engine publishes it now.
	restarts := unitProp(n, unit, "NRestarts")
	n.Exec(rt, "kill", container)
	n.WaitFor("a restart after the kill", 60*time.Second, func() bool {
		return unitProp(n, unit, "NRestarts") != restarts && unitProp(n, unit, "ActiveState") == "active"
	})
	t.Logf("%s registered at %s after the kill", unit, wantAddr("the restarted instance registered"))
	n.WaitFor("routed after the restart", 30*time.Second, func() bool { return routed(n, host) == 200 })

	// The unit's main process (the CLI) crashes: the container is removed
	// and systemd starts a new one.
	restarts = unitProp(n, unit, "NRestarts")
	n.Exec("systemctl", "kill", "--kill-who=main", "--signal=SIGKILL", unit)
	n.WaitFor("a restart after the CLI crashed", 60*time.Second, func() bool {
		return unitProp(n, unit, "NRestarts") != restarts && unitProp(n, unit, "ActiveState") == "active"
	})
	wantAddr("the instance registered after the CLI crashed")

	// Stopped cleanly: not failed, no record, no container.
	n.Exec("systemctl", "stop", unit)
	if s := unitProp(n, unit, "ActiveState"); s != "inactive" {
		t.Fatalf("%s after stop: %s, want inactive\n%s", unit, s, n.Journal(unit))
	}
	if in := instance(t, n, name, "1"); in != nil {
		t.Fatalf("record left after a clean stop: %+v", in)
	}
	if c := containers(n, rt, container); c != "" {
		t.Fatalf("container %s left after a clean stop: %s", container, c)
	}

	// Passivated when idle, woken by a request.
	startUnit(t, n, unit)
	wantAddr("the instance registered again")
	n.WaitFor("routed again", 30*time.Second, func() bool { return routed(n, host) == 200 })
	time.Sleep(4 * time.Second) // past the idle timeout
	n.Exec("/opt/bin/berth", "passivate", "--min-uptime", "0s")
	n.WaitFor("the passivated instance stopped", 60*time.Second, func() bool {
		return unitProp(n, unit, "ActiveState") == "inactive" && containers(n, rt, container) == ""
	})
	if in := instance(t, n, name, "1"); in != nil {
		t.Fatalf("record left after passivation: %+v", in)
	}
	n.WaitFor("a request woke the app", 60*time.Second, func() bool { return routed(n, host) == 200 })
	wantAddr("the woken instance registered")
	n.Exec("systemctl", "stop", unit)
	if c := containers(n, rt, container); c != "" {
		t.Fatalf("container %s left: %s", container, c)
	}
}

// startUnit starts a unit in the node, failing with its journal.
func startUnit(t testing.TB, n *enginetest.Node, unit string) {
	t.Helper()
	if out, err := n.Try("systemctl", "start", unit); err != nil {
		t.Fatalf("start %s: %v\n%s\njournal:\n%s", unit, err, out, n.Journal(unit))
	}
}

// status returns an app's status record, or nil.
func status(t testing.TB, n *enginetest.Node, app string) *registry.Status {
	t.Helper()
	k, _ := registry.NewKeys("")
	key, err := k.Status(app)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := n.Etcd.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	var st registry.Status
	if err := json.Unmarshal(resp.Kvs[0].Value, &st); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return &st
}

// laterRelease starts a second release's unit ("<app>.2@1.service",
// container "%p-%i" = "<app>.2-1") of a docker app: the hook finds the
// container under the units' name and registers instance "2.1" there.
func laterRelease(t *testing.T, n *enginetest.Node) {
	app, _ := appSpec(t, "dgen", spec.RuntimeDocker, image, spec.PullNever)
	app.Generation = 2
	files, err := units.Render(app, units.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if files[0].Name != "dgen.2@.service" {
		t.Fatalf("rendered %s, want dgen.2@.service", files[0].Name)
	}
	writeFile(t, filepath.Join(n.Units, files[0].Name), string(files[0].Content))
	n.Exec("systemctl", "link", "/run/berth-units/"+files[0].Name)
	startUnit(t, n, "dgen.2@1.service")
	n.WaitFor("release 2's instance registered", 60*time.Second, func() bool {
		in := instance(t, n, "dgen", "2.1")
		p := publishedPort(n, "docker", "dgen.2-1", "8080/tcp")
		return in != nil && p != "" && in.Addr == "127.0.0.1:"+p
	})
	n.Exec("systemctl", "stop", "dgen.2@1.service")
	if c := containers(n, "docker", "dgen.2-1"); c != "" {
		t.Fatalf("container dgen.2-1 left: %s", c)
	}
}
