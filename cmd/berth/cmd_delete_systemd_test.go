package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/systemdtest"
)

// TestDeleteSystemdDriver: on a real systemd (a container), the systemd
// driver stops the app's instance units, waits for the stops, removes
// the links "systemctl link" and "enable" made (persistent and runtime)
// and reloads; another app's units run on. A unit file that is no link
// is reported as kept.
func TestDeleteSystemdDriver(t *testing.T) {
	srv, cli := etcdtest.New(t)
	unitDir := t.TempDir()
	unit := "[Unit]\nDescription=%p %i\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"
	for _, name := range []string{"web@.service", "api@.service", "other@.service"} {
		if err := os.WriteFile(filepath.Join(unitDir, name), []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := systemdtest.Boot(t, "berth-delete-test", systemdtest.Bind{Host: unitDir, Container: "/run/berth-units", ReadOnly: true})
	ctx := context.Background()
	conn, err := control.DialSystemd(ctx, c.BusAddress())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.LinkUnitFilesContext(ctx, []string{"/run/berth-units/web@.service"}, false, true); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.LinkUnitFilesContext(ctx, []string{"/run/berth-units/api@.service", "/run/berth-units/other@.service"}, true, true); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Exec("cp", "/run/berth-units/web@.service", "/etc/systemd/system/old@.service"); err != nil {
		t.Fatalf("write old@.service: %v %s", err, out)
	}
	if err := conn.ReloadContext(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := conn.EnableUnitFilesContext(ctx, []string{"web@1.service"}, false, true); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"web@1.service", "web@2.service", "api@1.service", "other@1.service", "old@1.service"} {
		ch := make(chan string, 1)
		if _, err := conn.StartUnitContext(ctx, u, "replace", ch); err != nil || <-ch != "done" {
			t.Fatalf("start %s: %v", u, err)
		}
	}
	for _, app := range []string{"web", "api", "old"} {
		deployed(t, cli, srv.Endpoint, app)
	}

	args := []string{"--driver", "systemd", "--dbus-address", c.BusAddress(), "--node", "n1", "--etcd-endpoints", srv.Endpoint}
	code, out, errOut := berth(t, append([]string{"delete", "web", "api"}, args...)...)
	if code != 0 {
		t.Fatalf("delete: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, want := range []string{"stopped web@1.service", "stopped web@2.service", "unlink /etc/systemd/system/web@.service",
		"unlink /etc/systemd/system/multi-user.target.wants/web@1.service", "deleted web",
		"stopped api@1.service", "unlink /run/systemd/system/api@.service", "deleted api"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	state, _ := c.Exec("systemctl", "is-active", "web@1.service", "web@2.service", "api@1.service", "other@1.service")
	if state != "inactive\ninactive\ninactive\nactive\n" {
		t.Errorf("is-active web@1 web@2 api@1 other@1: %q, want inactive but other@1", state)
	}
	files, _ := c.Exec("systemctl", "list-unit-files", "--no-legend", "web@*", "api@*", "other@*")
	if strings.Contains(files, "web@") || strings.Contains(files, "api@") || !strings.Contains(files, "other@.service") {
		t.Errorf("unit files after the delete:\n%s\nwant other@.service only", files)
	}
	if links, _ := c.Exec("sh", "-c", "ls /etc/systemd/system /etc/systemd/system/multi-user.target.wants /run/systemd/system"); strings.Contains(links, "web@") || strings.Contains(links, "api@") {
		t.Errorf("links left:\n%s", links)
	}
	for _, app := range []string{"web", "api"} {
		if r := records(t, cli, app); r.Found() {
			t.Errorf("records of %s left: %+v", app, r)
		}
	}

	// A unit file copied into /etc/systemd/system: stopped, reported kept.
	code, out, errOut = berth(t, append([]string{"delete", "old"}, args...)...)
	if code != 0 || !strings.Contains(out, "stopped old@1.service") ||
		!strings.Contains(out, "kept /etc/systemd/system/old@.service (not a link: remove it and run systemctl daemon-reload)") {
		t.Fatalf("delete old: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if state, _ := c.Exec("systemctl", "is-active", "old@1.service"); state != "inactive\n" {
		t.Errorf("old@1: %q, want inactive", state)
	}
}
