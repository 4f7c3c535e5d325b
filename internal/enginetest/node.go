package enginetest

import (
	"archive/tar"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/systemdtest"
)

// Node is one systemd machine with Docker (docker.service, started by
// StartDocker) and podman, in its own network namespace.
type Node struct {
	NS *NS
	C  *systemdtest.Container
	// Etcd is a client of the test's etcd; the node reaches the same etcd
	// on its 127.0.0.1:2379 (berth.env says so).
	Etcd *clientv3.Client
	// Etc is mounted read-only at /etc/berth (berth.env is written there);
	// Units at /run/berth-units, Share at /run/berth-share (the image
	// tarball demo.tar, and what a test puts there).
	Etc, Units, Share string
	// Berth is the static berth binary, also the node's /opt/bin/berth.
	Berth string
	t     testing.TB
}

// Nspawn settings the engines need in a test container: cgroup v2 (the
// host's v1 controllers are read-only inside; v2 without controllers lets
// runc create the containers' cgroups), /proc/sys/net writable (bridges
// and forwarding, in the node's own namespace), CAP_NET_ADMIN and CAP_BPF
// (bridges, the device cgroup program), and the keyring and bpf system
// calls systemd-nspawn filters by default (runc's session keyring, the
// device cgroup program).
var nodeOptions = []systemdtest.Option{
	systemdtest.Env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1"),
	systemdtest.Env("SYSTEMD_NSPAWN_API_VFS_WRITABLE=network"),
	systemdtest.Nspawn{"--capability=CAP_NET_ADMIN,CAP_BPF", "--system-call-filter=@keyring bpf"},
}

// StartNode boots a node. It skips the test, saying what to install, when
// the engines are missing on this machine.
func StartNode(t *testing.T) *Node {
	t.Helper()
	if b := Missing(); b != "" {
		t.Skipf("container engine tests need %s: apt-get install podman docker.io docker-registry (bin/test installs them)", b)
	}
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{t: t, Etc: t.TempDir(), Units: t.TempDir(), Share: t.TempDir()}
	n.NS = NewNS(t)
	s, cli := etcdtest.New(t)
	n.Etcd = cli
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	n.NS.Forward(t, "127.0.0.1:2379", u.Host)
	n.Berth = systemdtest.BuildBerth(t)
	if err := writeImage(filepath.Join(n.Share, "demo.tar"), n.Berth); err != nil {
		t.Fatal(err)
	}
	env := "BERTH_ETCD_ENDPOINTS=http://127.0.0.1:2379\nBERTH_ADVERTISE_IP=127.0.0.1\nBERTH_NODE=node1\nBERTH_ROUTER_ID=node1\n"
	if err := os.WriteFile(filepath.Join(n.Etc, "berth.env"), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	// The engines' storage: a host directory (overlayfs cannot stack on
	// the node's overlay root), removed after the node is off.
	storage, err := os.MkdirTemp("", "berth-engines-storage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(storage) })
	for _, d := range []string{"docker", "containers"} {
		if err := os.MkdirAll(filepath.Join(storage, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	opts := append([]systemdtest.Option{
		systemdtest.RootFS(root),
		systemdtest.NetNS(n.NS.Path()),
		systemdtest.Bind{Host: n.Berth, Container: "/opt/bin/berth", ReadOnly: true},
		systemdtest.Bind{Host: n.Etc, Container: "/etc/berth", ReadOnly: true},
		systemdtest.Bind{Host: n.Units, Container: "/run/berth-units", ReadOnly: true},
		systemdtest.Bind{Host: n.Share, Container: "/run/berth-share"},
		systemdtest.Bind{Host: filepath.Join(storage, "docker"), Container: "/var/lib/docker"},
		systemdtest.Bind{Host: filepath.Join(storage, "containers"), Container: "/var/lib/containers"},
	}, nodeOptions...)
	n.C = systemdtest.Boot(t, "berth-engines", opts...)
	return n
}

// writeImage writes the image's root as a tarball: the berth binary as
// /berth, which "docker import" / "podman import" make an image of.
func writeImage(path, berth string) error {
	b, err := os.ReadFile(berth)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "berth", Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Now()}); err != nil {
		f.Close()
		return err
	}
	if _, err := tw.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Use makes the node report failures to t (a subtest).
func (n *Node) Use(t testing.TB) { n.t = t }

// Try runs a command in the node.
func (n *Node) Try(argv ...string) (string, error) { return n.C.Exec(argv...) }

// Exec runs a command in the node and fails the test if it fails.
func (n *Node) Exec(argv ...string) string {
	n.t.Helper()
	out, err := n.C.Exec(argv...)
	if err != nil {
		n.t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return out
}

// StartDocker starts the node's docker.service.
func (n *Node) StartDocker() {
	n.t.Helper()
	n.Exec("systemctl", "start", "docker.service")
}

// ImportImage makes the image "cli import" of the berth binary, as name,
// with entrypoint "/berth demo-app" (cli is docker or podman).
func (n *Node) ImportImage(cli, name string) {
	n.t.Helper()
	n.Exec(cli, "import", "--change", `ENTRYPOINT ["/berth","demo-app"]`, "/run/berth-share/demo.tar", name)
}

// HTTPClient is a client that connects from inside the node's namespace.
func (n *Node) HTTPClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: n.NS.DialContext, DisableKeepAlives: true}}
}

// Journal returns a unit's journal in the node.
func (n *Node) Journal(unit string) string {
	out, _ := n.C.Exec("journalctl", "--no-pager", "-o", "cat", "-u", unit)
	return out
}

// WaitFor polls cond every 100ms until it holds or timeout passes.
func (n *Node) WaitFor(what string, timeout time.Duration, cond func() bool) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			n.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Get fetches url from inside the node's namespace with Host header host.
func (n *Node) Get(ctx context.Context, url, host string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := n.HTTPClient().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		k, err := resp.Body.Read(buf)
		b.Write(buf[:k])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String(), nil
}

// String names the node in messages.
func (n *Node) String() string { return fmt.Sprintf("node %s (netns %s)", n.C.Name, n.NS.Name) }
