package socktest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
)

func TestListeningFindsLoopbackSockets(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	c, err := net.Dial("tcp", l.Addr().String()) // connected: not listening
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	socks, err := Listening(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := []Socket{
		{"tcp", netip.MustParseAddrPort(l.Addr().String())},
		{"udp", netip.MustParseAddrPort(u.LocalAddr().String())},
	}
	for _, w := range want {
		if !slices.Contains(socks, w) {
			t.Errorf("%v not among %v", w, socks)
		}
	}
	if dialed := netip.MustParseAddrPort(c.LocalAddr().String()); slices.Contains(socks, Socket{"tcp", dialed}) {
		t.Errorf("the connected socket %v is listed as listening", dialed)
	}
}

func TestParseAddr(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the addresses below are as a little-endian machine prints them")
	}
	for in, want := range map[string]string{
		"0100007F:0CEB":                         "127.0.0.1:3307",
		"00000000:0050":                         "0.0.0.0:80",
		"00000000000000000000000001000000:1F90": "[::1]:8080",
		"00000000000000000000000000000000:0035": "[::]:53",
		"0000000000000000FFFF00000100007F:0929": "[::ffff:127.0.0.1]:2345",
	} {
		got, err := parseAddr(in)
		if err != nil || got.String() != want {
			t.Errorf("parseAddr(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
}
