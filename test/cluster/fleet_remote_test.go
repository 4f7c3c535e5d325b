package cluster

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// fleetStatusJournal: berth fleet status and journal from n1, for units
// on n1 (systemctl run here) and on n2 and n3 (through ssh, with a key
// the test makes and installs for root on every node). The units'
// template has an escaped name (hi\x2dthere@.service), which the remote
// shell must get intact; MachineID=%i puts each instance on its node.
func fleetStatusJournal(t *testing.T, c *Cluster) {
	n1, n3 := c.Nodes[0], c.Nodes[2]
	for _, n := range c.Nodes {
		n.Exec(t, "systemctl", "start", "ssh.service")
	}
	n1.Exec(t, "sh", "-c", "mkdir -p -m 700 /root/.ssh && rm -f /root/.ssh/id_ed25519* && ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519")
	pub := n1.Exec(t, "cat", "/root/.ssh/id_ed25519.pub")
	for _, n := range c.Nodes {
		n.Exec(t, "sh", "-c", `mkdir -p -m 700 /root/.ssh && printf '%s' "$1" > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys`, "sh", pub)
	}
	// berth on n1 as its operator runs it: this host is node n1 (the
	// cluster names its nodes with BERTH_NODE in /etc/berth/berth.env).
	fleet := func(args ...string) (string, int) {
		t.Helper()
		out, err := n1.Try(append([]string{"env", "BERTH_NODE=n1", "/opt/bin/berth", "fleet", "--etcd-request-timeout", "2s"}, args...)...)
		var ee *exec.ExitError
		switch {
		case err == nil:
			return out, 0
		case errors.As(err, &ee):
			return out, ee.ExitCode()
		}
		t.Fatalf("berth fleet %s: %v\n%s", strings.Join(args, " "), err, out)
		return "", 0
	}
	ssh := []string{"--ssh-username", "root", "--strict-host-key-checking=false"}
	unit := func(node string) string { return `hi\x2dthere@` + node + ".service" }

	template := "[Unit]\nDescription=berth fleet status test %i\n\n[Service]\n" +
		"ExecStart=/bin/sh -c 'echo \"remote test line on %i\"; exec sleep infinity'\n\n[X-Fleet]\nMachineID=%i\n"
	n1.Exec(t, "sh", "-c", `printf '%s' "$1" > '/tmp/hi\x2dthere@.service'`, "sh", template)
	if out, code := fleet("start", `/tmp/hi\x2dthere@.service`, unit("n1"), unit("n2"), unit("n3")); code != 0 {
		t.Fatalf("start: exit %d\n%s", code, out)
	}
	c.waitFor("each unit's line in its node's journal", 20*time.Second, func() bool {
		for _, n := range c.Nodes {
			out, _ := n.Try("journalctl", "--no-pager", "--unit", unit(n.Name))
			if !strings.Contains(out, "remote test line on "+n.Name) {
				return false
			}
		}
		return true
	})

	// Here: systemctl on n1 itself (no ssh flags: as core over ssh it
	// would fail).
	out, code := fleet("status", unit("n1"))
	if code != 0 || !strings.Contains(out, "● "+unit("n1")) || !strings.Contains(out, "Active: active (running)") {
		t.Fatalf("status of a unit on this host: exit %d\n%s", code, out)
	}
	// Here and on n2 over ssh (on n1, n2's unit does not exist: systemctl
	// would exit 4), a blank line between the two. (systemctl status does
	// not always show the unit's newest journal lines yet: not checked.)
	out, code = fleet(append(ssh, "status", unit("n1"), unit("n2"))...)
	if code != 0 || strings.Count(out, "Active: active (running)") != 2 || !strings.Contains(out, "\n\n● "+unit("n2")) {
		t.Fatalf("status of units on n1 and n2: exit %d\n%s", code, out)
	}
	// Without the user: ssh as core fails, and says so.
	if out, code := fleet("status", "--strict-host-key-checking=false", unit("n2")); code != 255 ||
		!strings.Contains(out, "ssh core@10.213.0.12 (machine n2) failed with exit status 255") {
		t.Errorf("status over ssh as core: exit %d, want 255\n%s", code, out)
	}

	// The journal of n3's unit, its last 5 entries.
	out, code = fleet(append(ssh, "journal", "--lines", "5", `hi\x2dthere@n3`)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || !strings.Contains(out, "remote test line on n3") || len(lines) > 5 || strings.Contains(out, "line on n1") {
		t.Errorf("journal --lines 5 of n3's unit: exit %d, %d lines\n%s", code, len(lines), out)
	}
	// Followed, until berth is stopped (SIGTERM): ssh ends, which is no
	// failure to report, and the remote journalctl ends too.
	out, _ = n1.Try(append([]string{"timeout", "4", "env", "BERTH_NODE=n1", "/opt/bin/berth", "fleet"}, append(ssh, "journal", "-f", unit("n3"))...)...)
	if !strings.Contains(out, "remote test line on n3") || strings.Contains(out, "berth:") {
		t.Errorf("journal -f of n3's unit, stopped after 4s: want its lines and no error\n%s", out)
	}
	c.waitFor("the followed journalctl on n3 to end", 10*time.Second, func() bool {
		_, err := n3.Try("pgrep", "-f", "[j]ournalctl --unit")
		return err != nil
	})

	if out, code := fleet("status", "nope@1"); code != 1 || !strings.Contains(out, "Unit nope@1.service does not exist.") {
		t.Errorf("status of an unknown unit: exit %d\n%s", code, out)
	}

	// A stopped unit on n2: systemctl status says so with its exit status 3.
	if out, code := fleet("stop", unit("n2")); code != 0 {
		t.Fatalf("stop: exit %d\n%s", code, out)
	}
	out, code = fleet(append(ssh, "status", unit("n2"))...)
	if code != 3 || !strings.Contains(out, "Active: inactive (dead)") {
		t.Errorf("status of a stopped unit on n2: exit %d, want 3\n%s", code, out)
	}
	if out, code := fleet("destroy", unit("n1"), unit("n2"), unit("n3"), `hi\x2dthere@.service`); code != 0 {
		t.Errorf("destroy: exit %d\n%s", code, out)
	}
}
