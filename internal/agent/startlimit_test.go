package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/internal/systemdtest"
)

// TestAgentLeavesStartLimitFailure: a unit whose start keeps failing (as a
// pull the registry refuses) while the app is starting is restarted by
// systemd until its start limit, then stays failed: the agent reports it
// and does not start it again. A later wake does start it again.
func TestAgentLeavesStartLimitFailure(t *testing.T) {
	_, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	unitDir := t.TempDir()
	os.WriteFile(filepath.Join(unitDir, "flaky@.service"), []byte(`[Unit]
StartLimitIntervalSec=1min
StartLimitBurst=2
[Service]
ExecStartPre=/bin/sh -c 'echo refusing start; exit 1'
ExecStart=/bin/sleep infinity
Restart=always
RestartSec=200ms
`), 0o644)
	apps, err := spec.Parse([]byte("apiVersion: berth/v1\nname: flaky\nversion: 1.0.0\nruntime: exec\ncommand: [/bin/sleep, infinity]\n"))
	if err != nil {
		t.Fatal(err)
	}
	app := apps[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := registry.PublishApp(ctx, cli, k, app); err != nil {
		t.Fatal(err)
	}
	c := systemdtest.Boot(t, "berth-agent-startlimit",
		systemdtest.Bind{Host: unitDir, Container: "/run/berth-units", ReadOnly: true})
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	runDir := t.TempDir()
	a := &Agent{Cli: cli, Keys: k, Log: log, Cache: registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log),
		Cfg: Config{Node: "n1", IP: "127.0.0.1", Socket: filepath.Join(runDir, "agent.sock"), StateDir: filepath.Join(runDir, "agent"),
			DBusAddress: c.BusAddress(), LeaseTTL: 3 * time.Second}}
	agentDone := make(chan struct{})
	go func() { a.Run(ctx); close(agentDone) }()
	defer func() { cancel(); <-agentDone }()
	<-a.Ready()
	conn, err := control.DialSystemd(ctx, c.BusAddress())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.LinkUnitFilesContext(ctx, []string{"/run/berth-units/flaky@.service"}, true, true); err != nil {
		t.Fatal(err)
	}
	if err := conn.ReloadContext(ctx); err != nil {
		t.Fatal(err)
	}
	setStatus := func(current string) {
		t.Helper()
		if _, err := registry.Update(ctx, cli, k, "flaky", func(cur *registry.Status) (registry.Status, bool) {
			n := registry.Status{}
			if cur != nil {
				n = *cur
			}
			n.Current, n.Expected, n.Since = current, registry.StatusStarted, 0
			return n, true
		}); err != nil {
			t.Fatal(err)
		}
	}
	attempts := func() int {
		out, _ := c.Exec("journalctl", "--no-pager", "-o", "cat", "-u", "flaky@1.service")
		return strings.Count(out, "refusing start")
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				out, _ := c.Exec("journalctl", "--no-pager", "-n", "40")
				t.Fatalf("timed out waiting for %s\n%s", what, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	failed := func() bool {
		out, _ := c.Exec("systemctl", "is-failed", "flaky@1.service")
		return strings.TrimSpace(out) == "failed"
	}

	setStatus(registry.StatusStarting) // what the pre-start hook writes
	conn.StartUnitContext(ctx, "flaky@1.service", "replace", nil)
	waitFor("the app's status failed", func() bool {
		st := a.Cache.Snapshot().Status["flaky"]
		return failed() && st != nil && st.Current == registry.StatusFailed
	})
	n := attempts()
	time.Sleep(3 * time.Second) // three of the agent's passes
	if got := attempts(); got != n || n > 2 || !failed() {
		t.Fatalf("%d start attempts, then %d (want at most StartLimitBurst=2, then none): the unit was started again", n, got)
	}

	// A wake (the router's transaction: starting, since now) starts a unit
	// that failed before it.
	if _, err := registry.Update(ctx, cli, k, "flaky", func(cur *registry.Status) (registry.Status, bool) {
		n := *cur
		n.Units = map[string][]string{"n1": {"flaky@1.service"}}
		return n, true
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	setStatus(registry.StatusStarting)
	waitFor("the wake to start the failed unit", func() bool { return attempts() > n })
}
