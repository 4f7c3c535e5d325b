package enginetest

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestNS: a listener opened in the namespace is reached from inside it
// and not from the test's own namespace; Forward relays from the
// namespace to a host listener.
func TestNS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	ns := NewNS(t)
	l, err := ns.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "inside\n")
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	read := func(c net.Conn) string {
		defer c.Close()
		b, _ := io.ReadAll(c)
		return string(b)
	}
	c, err := ns.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial inside: %v", err)
	}
	if got := read(c); got != "inside\n" {
		t.Fatalf("inside: got %q", got)
	}
	if c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		got := read(c)
		t.Fatalf("the namespace's listener answered in the host's namespace: %q", got)
	}

	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	go func() {
		c, err := host.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, "host\n")
		c.Close()
	}()
	ns.Forward(t, "127.0.0.1:2379", host.Addr().String())
	c, err = ns.DialContext(ctx, "tcp", "127.0.0.1:2379")
	if err != nil {
		t.Fatalf("dial the forwarder: %v", err)
	}
	if got := read(c); got != "host\n" {
		t.Fatalf("through the forwarder: got %q, want host", got)
	}
}
