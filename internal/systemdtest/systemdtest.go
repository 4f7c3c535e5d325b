// Package systemdtest boots real systemd in containers (systemd-nspawn on a
// shared read-only Debian root with --volatile=overlay) for tests of units,
// hooks and the node agent's D-Bus reconciler. The root filesystem is built
// once by build-rootfs.sh and cached as a tarball.
package systemdtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// CachePath is where the root filesystem tarball is kept
// ($BERTH_CACHE/rootfs-bookworm-2.tar.zst, default ~/.cache/berth). The
// number changes with what build-rootfs.sh puts in, so that a stale
// cache is rebuilt.
func CachePath() string {
	dir := os.Getenv("BERTH_CACHE")
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil && home != "" {
			dir = filepath.Join(home, ".cache", "berth")
		} else {
			dir = "/var/cache/berth"
		}
	}
	return filepath.Join(dir, "rootfs-bookworm-2.tar.zst")
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// Root returns the extracted root filesystem, building and caching the
// tarball first if needed (a few minutes, once per machine).
func Root() (string, error) {
	rootOnce.Do(func() {
		if os.Geteuid() != 0 {
			rootErr = fmt.Errorf("systemd containers need root")
			return
		}
		tarball := CachePath()
		if _, err := os.Stat(tarball); err != nil {
			_, file, _, _ := runtime.Caller(0)
			script := filepath.Join(filepath.Dir(file), "build-rootfs.sh")
			out, err := exec.Command("bash", script, tarball).CombinedOutput()
			if err != nil {
				rootErr = fmt.Errorf("build root filesystem: %v\n%s", err, out)
				return
			}
		}
		rootDir, rootErr = Extract(tarball)
	})
	return rootDir, rootErr
}

// Container is one booted systemd.
type Container struct {
	Name   string
	BusDir string // the container's /run/dbus: the system bus socket is here
	cmd    *exec.Cmd
	log    *bytes.Buffer
	cgroup string // this boot's cgroup name (unique: a reboot never reuses one)
}

// Option is a Bind, a NetNS, a RootFS, an Nspawn or an Env.
type Option interface{ nspawnArgs() []string }

// RootFS boots the container on another root directory than Root() (a
// root derived from it, such as enginetest's with container engines).
type RootFS string

func (RootFS) nspawnArgs() []string { return nil }

// Nspawn passes further arguments to systemd-nspawn (capabilities, system
// call filters).
type Nspawn []string

func (n Nspawn) nspawnArgs() []string { return n }

// Env sets one environment variable ("KEY=value") of systemd-nspawn, such
// as SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1.
type Env string

func (Env) nspawnArgs() []string { return nil }

// Bind is a host path mounted into the container.
type Bind struct {
	Host, Container string
	ReadOnly        bool
}

func (b Bind) nspawnArgs() []string {
	flag := "--bind="
	if b.ReadOnly {
		flag = "--bind-ro="
	}
	return []string{flag + b.Host + ":" + b.Container}
}

// NetNS puts the container in an existing network namespace (a path such
// as /run/netns/NAME); by default it shares the host's network.
type NetNS string

func (n NetNS) nspawnArgs() []string { return []string{"--network-namespace-path=" + string(n)} }

// Boot starts a container and waits until its systemd is running; it is
// stopped when the test ends.
func Boot(t testing.TB, name string, opts ...Option) *Container {
	t.Helper()
	var root string
	var env []string
	for _, o := range opts {
		switch o := o.(type) {
		case RootFS:
			root = string(o)
		case Env:
			env = append(env, string(o))
		}
	}
	if root == "" {
		var err error
		if root, err = Root(); err != nil {
			t.Fatal(err)
		}
	}
	c := &Container{Name: name, BusDir: t.TempDir(), log: &bytes.Buffer{}, cgroup: fmt.Sprintf("berth-%s-%d", name, time.Now().UnixNano())}
	// The machine name (also the container's host name) is unique per
	// boot, so a container still powering off never collides with the next.
	machine := fmt.Sprintf("%s-%04x", name, time.Now().UnixNano()&0xffff)
	args := []string{"-D", root, "-b", "-M", machine, "--register=no", "--keep-unit", "--console=pipe", "--volatile=overlay",
		"--bind=" + c.BusDir + ":/run/dbus"}
	for _, o := range opts {
		args = append(args, o.nspawnArgs()...)
	}
	// The launching shell moves into its own cgroup in both hierarchies,
	// or two containers would share one tree (no host systemd here).
	script := `for h in systemd unified; do if [ -d /sys/fs/cgroup/$h ]; then mkdir -p /sys/fs/cgroup/$h/$0; echo $$ > /sys/fs/cgroup/$h/$0/cgroup.procs; fi; done; exec systemd-nspawn "$@"`
	c.cmd = exec.Command("sh", append([]string{"-c", script, c.cgroup}, args...)...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if len(env) > 0 {
		c.cmd.Env = append(os.Environ(), env...)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ := c.Exec("systemctl", "is-system-running")
		state := strings.TrimSpace(out)
		if state == "running" || state == "degraded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not boot (state %q):\n%s", name, state, c.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c
}

// BusAddress is the D-Bus address of the container's system bus.
func (c *Container) BusAddress() string {
	return "unix:path=" + filepath.Join(c.BusDir, "system_bus_socket")
}

// leader is the pid of the container's init.
func (c *Container) leader() (int, error) {
	if c.cmd.Process == nil {
		return 0, fmt.Errorf("not started")
	}
	out, err := exec.Command("pgrep", "-P", strconv.Itoa(c.cmd.Process.Pid)).Output()
	if err != nil {
		return 0, fmt.Errorf("no init yet")
	}
	return strconv.Atoi(strings.Fields(string(out))[0])
}

// Exec runs a command inside the container (nsenter into its namespaces).
func (c *Container) Exec(argv ...string) (string, error) {
	pid, err := c.leader()
	if err != nil {
		return "", err
	}
	out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(pid), "-a"}, argv...)...).CombinedOutput()
	return string(out), err
}

// Stop powers the container off (SIGTERM to nspawn, SIGKILL after 15s) and
// removes its cgroups. It is safe to call twice.
func (c *Container) Stop() {
	if c.cmd.Process == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM) // nspawn asks the container to power off
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	for _, h := range []string{"systemd", "unified"} {
		removeCgroup(filepath.Join("/sys/fs/cgroup", h, c.cgroup))
	}
}

// removeCgroup removes a cgroup and every cgroup below it, deepest first.
func removeCgroup(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroup(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}

// BuildBerth compiles the berth binary that a container's units run
// (static, so it runs on the container's root).
func BuildBerth(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	out := filepath.Join(t.TempDir(), "berth")
	cmd := exec.Command("go", "build", "-o", out, filepath.Join(filepath.Dir(file), "../../cmd/berth"))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build berth: %v\n%s", err, b)
	}
	return out
}
