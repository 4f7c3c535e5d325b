package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdserver"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

// etcdWithWebInstance starts an etcd holding one live instance of "web"
// at 10.9.8.7:8080 on node n1.
func etcdWithWebInstance(t *testing.T, addr string) *etcdserver.Server {
	t.Helper()
	srv, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	key, val, _ := registry.InstanceKV(k, &registry.Instance{App: "web", ID: "1", Addr: addr, Node: "n1", State: registry.StateUp})
	if _, err := cli.Put(context.Background(), key, val); err != nil {
		t.Fatal(err)
	}
	return srv
}

// etcdWithWebDomain is etcdWithWebInstance with the instance at addr and
// the domain web.example.com routed to "web".
func etcdWithWebDomain(t *testing.T, addr string) *etcdserver.Server {
	t.Helper()
	srv := etcdWithWebInstance(t, addr)
	k, _ := registry.NewKeys("")
	dk, _ := k.Domain("web.example.com")
	if _, err := etcdtest.Client(t, srv.Endpoint).Put(t.Context(), dk, `{"app":"web"}`); err != nil {
		t.Fatal(err)
	}
	return srv
}

// startDNSD runs "berth dnsd" as systemd would (sd_notify) on a free UDP
// port against endpoint, with env added, and checks that once ready it
// answers dig for web.service.berth with web's instance, 10.9.8.7. The
// process is killed at the end of the test.
func startDNSD(t *testing.T, endpoint string, env ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	addr := freeAddrs(t, 1)[0]
	notify, msgs := notifySocket(t)
	self, _ := os.Executable()
	cmd := exec.Command(self, "dnsd", "--listen", addr, "--etcd-endpoints", endpoint, "--admin", "", "--log-level", "warn")
	cmd.Env = append(append(os.Environ(), "BERTH_TEST_AS_MAIN=1", "NOTIFY_SOCKET="+notify), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	waitMsg(t, msgs, "READY=1")
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("dig", "@"+host, "-p", port, "+short", "web.service.berth", "A").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "10.9.8.7" {
		t.Fatalf("dig: %q %v", out, err)
	}
	return cmd, msgs
}

func TestDNSDCommand(t *testing.T) {
	srv := etcdWithWebInstance(t, "10.9.8.7:8080")

	cmd, msgs := startDNSD(t, srv.Endpoint)
	code, listing, errOut := berth(t, "dns", "--etcd-endpoints", srv.Endpoint)
	if code != 0 || !strings.Contains(listing, "_web._tcp.service.berth.") || !strings.Contains(listing, "1 1 8080 web-1.n1.node.berth.") {
		t.Fatalf("berth dns: exit %d %q %q", code, listing, errOut)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitMsg(t, msgs, "STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dnsd exit: %v", err)
	}
}

// TestDNSDSocketActivation passes a UDP and a TCP socket as systemd's
// berth-dnsd.socket does and queries both.
func TestDNSDSocketActivation(t *testing.T) {
	srv := etcdWithWebInstance(t, "10.9.8.7:8080")
	// A UDP and a TCP socket on one port number: the number a free UDP
	// port gets may be taken for TCP (another test's connection), so try
	// a few.
	var pc net.PacketConn
	var l net.Listener
	var addr string
	for try := 0; l == nil; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		addr = pc.LocalAddr().String()
		if l, err = net.Listen("tcp", addr); err != nil {
			pc.Close()
			if try == 20 {
				t.Fatal(err)
			}
		}
	}
	uf, _ := pc.(*net.UDPConn).File()
	tf, _ := l.(*net.TCPListener).File()
	pc.Close()
	l.Close()
	notify, msgs := notifySocket(t)
	activatedFiles(t, []*os.File{uf, tf}, "dns", notify, "dnsd", "--etcd-endpoints", srv.Endpoint, "--admin", "", "--listen", "127.0.0.1:1", "--log-level", "warn")
	waitMsg(t, msgs, "READY=1")
	host, port, _ := net.SplitHostPort(addr)
	for _, proto := range []string{"+notcp", "+tcp"} {
		out, err := exec.Command("dig", "@"+host, "-p", port, proto, "+short", "web.service.berth", "A").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "10.9.8.7" {
			t.Fatalf("dig %s over the activated socket: %q %v", proto, out, err)
		}
	}
}

// TestDNSDSecure: berth dnsd with berth-dns's certificate (its read-only
// role, docs/security.md) follows a TLS + auth etcd and answers for the
// instances an agent registers.
func TestDNSDSecure(t *testing.T) {
	s, p := etcdtest.Secure(t)
	k, _ := registry.NewKeys("")
	key, val, _ := registry.InstanceKV(k, &registry.Instance{App: "web", ID: "1", Addr: "10.9.8.7:8080", Node: "n1", State: registry.StateUp})
	if _, err := etcdtest.SecureClient(t, s, p, etcdauth.Agent).Put(t.Context(), key, val); err != nil {
		t.Fatal(err)
	}
	dns := p.Client(etcdauth.DNS)
	cmd, _ := startDNSD(t, s.Endpoint, "BERTH_ETCD_CACERT="+p.CACert(), "BERTH_ETCD_CERT="+dns.Cert, "BERTH_ETCD_KEY="+dns.Key)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dnsd exit: %v", err)
	}
}
