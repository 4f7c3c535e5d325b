package engines

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/enginetest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/secret"
	"github.com/berthproject/berth/internal/spec"
)

// sealer gives the node the cluster's secrets identity where the units'
// hooks look for it (/etc/berth/pki/secrets.key, 0600) and publishes its
// recipient, as "berth secret keygen" and "berth secret init" do; the
// returned store seals values as "berth secret put" does.
func sealer(t *testing.T, n *enginetest.Node) *secret.Store {
	t.Helper()
	pki := filepath.Join(n.Etc, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		t.Fatal(err)
	}
	id, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := secret.WriteIdentity(filepath.Join(pki, "secrets.key"), id); err != nil {
		t.Fatal(err)
	}
	k, _ := registry.NewKeys("")
	st := &secret.Store{KV: n.Etcd, Keys: k}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := st.Init(ctx, []string{id.Recipient().String()}); err != nil {
		t.Fatal(err)
	}
	return st
}

// envSecrets: a docker and a podman unit whose env refers to a sealed
// secret get the value in the container's processes, exactly, and the value
// is nowhere else: not in a unit file, an etcd value, another process's
// command line or environment (the node's, the engines', the host's), nor
// the node's journal. The env file is on tmpfs, 0600, and the stop removes
// it. The one documented exception is the engine's own record of the
// container (docker/podman inspect, the engines' container config), which
// holds its environment while the container exists; it is checked to be
// gone once the unit has stopped, podman's database included.
func envSecrets(t *testing.T, n *enginetest.Node, st *secret.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, rt := range []string{spec.RuntimeDocker, spec.RuntimePodman} {
		rnd := make([]byte, 12)
		rand.Read(rnd)
		token := "engine-proof-" + hex.EncodeToString(rnd)
		value := token + ` "quoted" $HOME \ and 'spaces'`
		name := rt[:1] + "env"
		if _, err := st.Put(ctx, name, "api-token", []byte(value)); err != nil {
			t.Fatal(err)
		}
		app, y := appSpec(t, name, rt, image, spec.PullNever, "env:", "  API_TOKEN: secret:api-token", "  MODE: proof")
		install(t, n, app, y)
		unit, container := name+"@1.service", name+"-1"
		if rt == spec.RuntimePodman {
			// A stale podman secret of the instance's name (a crash that
			// skipped ExecStopPost): the start replaces it.
			writeFile(t, filepath.Join(n.Share, "stale"), "stale-value")
			n.Exec("podman", "secret", "create", container+"-API_TOKEN", "/run/berth-share/stale")
		}
		startUnit(t, n, unit)
		n.WaitFor(rt+" instance with a secret registered", 60*time.Second, func() bool {
			in := instance(t, n, name, "1")
			return in != nil && in.State == registry.StateUp
		})

		// The container's processes (its init and the app) have the value,
		// exactly; no other process on the machine has it.
		pidns := containerPIDNS(t, n, rt, container)
		var inside []string
		for _, p := range hostProcs(t) {
			if !strings.Contains(p.environ, token) && !strings.Contains(p.cmdline, token) {
				continue
			}
			if p.pidns != pidns {
				t.Errorf("%s: process %s (%q, not the container's) has the value in its command line or environment", rt, p.pid, p.cmdline)
				continue
			}
			if strings.Contains(p.cmdline, token) {
				t.Errorf("%s: the container's process %s has the value on its command line", rt, p.pid)
			}
			if !strings.Contains("\x00"+p.environ, "\x00API_TOKEN="+value+"\x00") || !strings.Contains(p.environ, "MODE=proof") {
				t.Errorf("%s: the container's process %s has the value, but not as API_TOKEN=%q: %q", rt, p.pid, value, p.environ)
			}
			inside = append(inside, p.pid+" "+p.cmdline)
		}
		if !strings.Contains(strings.Join(inside, "\n"), "demo-app") {
			t.Fatalf("%s: the app in the container lacks API_TOKEN (processes with the value: %q)", rt, inside)
		}
		t.Logf("%s: the value is in the environment of the container's processes only: %q", rt, inside)

		// The env file: on tmpfs, root's, 0600.
		dir := "/run/berth/secrets/" + name + "@1"
		if fs := strings.TrimSpace(n.Exec("stat", "-f", "-c", "%T", dir)); fs != "tmpfs" {
			t.Errorf("%s is on %s, want tmpfs", dir, fs)
		}
		if m := strings.TrimSpace(n.Exec("stat", "-c", "%a %U", dir+"/env")); m != "600 root" {
			t.Errorf("%s/env: mode %q, want 600 root", dir, m)
		}
		// Unit files, as written and as systemd sees them.
		units := n.Exec("sh", "-c", "cat /run/berth-units/* /etc/systemd/system/*.service 2>/dev/null; systemctl cat "+unit+"; systemctl show "+unit)
		// docker reads the env file; podman a podman secret (shell driver)
		// whose lookup reads it.
		via := map[string]string{spec.RuntimeDocker: "--env-file /run/berth/secrets/%p@%i/env",
			spec.RuntimePodman: "--secret %p-%i-API_TOKEN,type=env,target=API_TOKEN"}[rt]
		if !strings.Contains(units, "--secret API_TOKEN=api-token") || !strings.Contains(units, via) {
			t.Fatalf("%s lacks the secret's reference or %q:\n%s", unit, via, units)
		}
		if strings.Contains(units, token) {
			t.Errorf("%s: a unit file holds the value", rt)
		}
		// Every etcd value.
		all, err := n.Etcd.Get(ctx, "\x00", clientv3.WithFromKey())
		if err != nil || len(all.Kvs) < 5 {
			t.Fatalf("read etcd: %v", err)
		}
		for _, kv := range all.Kvs {
			if strings.Contains(string(kv.Value), token) {
				t.Errorf("%s: etcd key %s holds the value", rt, kv.Key)
			}
		}
		// The exception, by design (docs/secrets.md): the engine shows the
		// container's environment to whoever may use it.
		if out := n.Exec(rt, "inspect", "-f", "{{json .Config.Env}}", container); !strings.Contains(out, token) {
			t.Errorf("%s inspect does not show the container's environment (the documented exception changed?):\n%s", rt, out)
		}
		// The engine keeps that record on the node's disk while the
		// container exists (logged here; docs/secrets.md names the files).
		if out, _ := engineFiles(n, token); strings.TrimSpace(out) != "" {
			t.Logf("%s: while the container runs, the engine's files holding the value:\n%s", rt, strings.TrimSpace(out))
		}
		journal := func() string { return n.Exec("journalctl", "--no-pager", "-o", "export") }
		if strings.Contains(journal(), token) {
			t.Errorf("%s: the node's journal holds the value", rt)
		}

		// Stop: the secrets directory is gone, no process has the value,
		// and the engine's record of the container went with it.
		n.Exec("systemctl", "stop", unit)
		if _, err := n.Try("test", "-e", dir); err == nil {
			t.Errorf("%s left after the stop", dir)
		}
		for _, p := range hostProcs(t) {
			if strings.Contains(p.environ, token) || strings.Contains(p.cmdline, token) {
				t.Errorf("%s: after the stop, process %s (%q) has the value", rt, p.pid, p.cmdline)
			}
		}
		if _, err := n.Try(rt, "container", "inspect", container); err == nil {
			t.Errorf("%s: container %s left after the stop", rt, container)
		}
		// podman's container database (BoltDB) does not clear the pages
		// of removed records: had the value been in the container's
		// record (as --env-file puts it), it would still be found here.
		if out, _ := engineFiles(n, token); strings.TrimSpace(out) != "" {
			t.Errorf("%s: after the stop, the engine's files hold the value:\n%s", rt, out)
		}
		if rt == spec.RuntimePodman {
			if out := n.Exec("podman", "secret", "ls", "--format", "{{.Name}}"); strings.Contains(out, container) {
				t.Errorf("podman secrets left after the stop:\n%s", out)
			}
		}
		j := journal()
		if strings.Contains(j, token) {
			t.Errorf("%s: the node's journal holds the value", rt)
		} else if !strings.Contains(j, unit) || !strings.Contains(j, "secrets written") {
			t.Errorf("%s: the journal has no record of %s and its pre-start hook: the search proves nothing", rt, unit)
		}
	}
}

// engineFiles greps the engines' state (on disk and under /run) and the
// secrets directories for s, listing the files that hold it (grep's exit
// status is ignored: a directory one engine has not made yet is missing).
func engineFiles(n *enginetest.Node, s string) (string, error) {
	needle := filepath.Join(n.Share, "needle")
	if err := os.WriteFile(needle, []byte(s), 0o600); err != nil {
		return "", err
	}
	defer os.Remove(needle)
	return n.Try("grep", "-rlsF", "-f", "/run/berth-share/needle", "/var/lib/docker/containers", "/var/lib/containers/storage/libpod",
		"/var/lib/containers/storage/overlay-containers", "/run/containers", "/run/docker", "/run/containerd", "/run/libpod", "/run/berth")
}

// containerPIDNS returns the PID namespace ("pid:[N]") of a running
// container's processes.
func containerPIDNS(t *testing.T, n *enginetest.Node, cli, container string) string {
	t.Helper()
	pid := strings.TrimSpace(n.Exec(cli, "inspect", "-f", "{{.State.Pid}}", container))
	if _, err := strconv.Atoi(pid); err != nil || pid == "0" {
		t.Fatalf("%s inspect %s: pid %q", cli, container, pid)
	}
	return strings.TrimSpace(n.Exec("readlink", "/proc/"+pid+"/ns/pid"))
}

// proc is one process of the machine as the host's /proc shows it (which
// includes the node's and its containers' processes).
type proc struct {
	pid, cmdline, environ, pidns string
}

// hostProcs reads every process's command line, environment and PID
// namespace.
func hostProcs(t *testing.T) []proc {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var ps []proc
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		environ, _ := os.ReadFile(filepath.Join(dir, "environ"))
		ns, _ := os.Readlink(filepath.Join(dir, "ns", "pid"))
		ps = append(ps, proc{pid: e.Name(), cmdline: strings.ReplaceAll(string(cmdline), "\x00", " "), environ: string(environ), pidns: ns})
	}
	return ps
}
