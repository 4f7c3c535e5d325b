// Package socktest finds the addresses a process listens on, from Linux's
// /proc, for tests that check that berth listens on loopback only (what
// other machines could reach).
package socktest

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Socket is a listening socket: network "tcp" or "udp", and its local
// address (an IPv6 socket bound to "::" listens on every interface).
type Socket struct {
	Network string
	Addr    netip.AddrPort
}

func (s Socket) String() string { return s.Network + " " + s.Addr.String() }

// Listening returns the TCP sockets in LISTEN state and the unconnected UDP
// sockets that process pid has open.
func Listening(pid int) ([]Socket, error) {
	inodes := map[string]bool{}
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		return nil, err
	}
	if len(fds) == 0 {
		return nil, fmt.Errorf("process %d: no open files in /proc", pid)
	}
	for _, fd := range fds {
		l, err := os.Readlink(fd)
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []Socket
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		network := strings.TrimSuffix(table, "6")
		socks, err := parseTable(fmt.Sprintf("/proc/%d/net/%s", pid, table), network, inodes)
		if err != nil {
			return nil, err
		}
		out = append(out, socks...)
	}
	return out, nil
}

// parseTable reads /proc/PID/net/{tcp,tcp6,udp,udp6}: local address, remote
// address, state and inode in columns 2, 3, 4 and 10.
func parseTable(path, network string, inodes map[string]bool) ([]Socket, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) { // no IPv6
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	var out []Socket
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || !inodes[fields[9]] {
			continue
		}
		local, err := parseAddr(fields[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		remote, err := parseAddr(fields[2])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		listening := fields[3] == "0A" // TCP_LISTEN
		if network == "udp" {
			listening = remote.Port() == 0 && remote.Addr().IsUnspecified()
		}
		if listening {
			out = append(out, Socket{Network: network, Addr: local})
		}
	}
	return out, sc.Err()
}

// parseAddr parses "0100007F:0CEB": the address as 32-bit words printed
// in host byte order, the port in hex.
func parseAddr(s string) (netip.AddrPort, error) {
	ip, port, ok := strings.Cut(s, ":")
	b, err := hex.DecodeString(ip)
	if !ok || err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(b); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(b[i:]))
	}
	n, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", s)
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a, uint16(n)), nil
}
