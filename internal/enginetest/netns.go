package enginetest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NS is a network namespace a test created ("ip netns add"): loopback up,
// IPv4 forwarding on (the engines' bridges need it and cannot set it from
// inside the node). It is deleted when the test ends.
type NS struct{ Name string }

// NewNS creates a network namespace named berth-eng-<n>.
func NewNS(t testing.TB) *NS {
	t.Helper()
	ns := &NS{Name: fmt.Sprintf("berth-eng-%d", time.Now().UnixNano()%1_000_000_000)}
	for _, argv := range [][]string{
		{"ip", "netns", "add", ns.Name},
		{"ip", "netns", "exec", ns.Name, "ip", "link", "set", "lo", "up"},
		{"ip", "netns", "exec", ns.Name, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns.Name).Run() })
	return ns
}

// Path is the namespace's file, for setns and systemd-nspawn.
func (ns *NS) Path() string { return "/run/netns/" + ns.Name }

// in runs f on an OS thread switched into the namespace: sockets f
// creates belong to it for their whole life. A thread that cannot switch
// back is left locked, so that it ends with its goroutine.
func (ns *NS) in(f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(ns.Path())
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter %s: %w", ns.Name, err)
			return
		}
		f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("leave %s: %w", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	return <-errc
}

// Listen opens a listener inside the namespace.
func (ns *NS) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	var lerr error
	if err := ns.in(func() { l, lerr = net.Listen(network, addr) }); err != nil {
		return nil, err
	}
	return l, lerr
}

// DialContext connects from inside the namespace (an http.Transport's
// DialContext). addr's host must be an IP address: a name could be
// resolved and dialed on other threads, outside the namespace.
func (ns *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("dial %s in %s: the host must be an IP address", addr, ns.Name)
	}
	var c net.Conn
	var derr error
	if err := ns.in(func() { c, derr = (&net.Dialer{}).DialContext(ctx, network, addr) }); err != nil {
		return nil, err
	}
	return c, derr
}

// Forward accepts TCP connections on nsAddr inside the namespace and
// relays each to hostAddr in the test's own namespace, until the test ends.
func (ns *NS) Forward(t testing.TB, nsAddr, hostAddr string) {
	t.Helper()
	l, err := ns.Listen("tcp", nsAddr)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			track(in, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { in.Close(); track(in, false) }()
				out, err := net.DialTimeout("tcp", hostAddr, 5*time.Second)
				if err != nil {
					return
				}
				defer out.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(out, in); out.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(in, out); in.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
}
