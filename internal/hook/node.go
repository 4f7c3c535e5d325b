package hook

import (
	"net"
	"os"
	"strings"
)

// NodeID returns the node's identity: /etc/machine-id (as fleet uses), or
// the host name when there is none.
func NodeID() string {
	if b, err := os.ReadFile("/etc/machine-id"); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id
		}
	}
	h, _ := os.Hostname()
	return h
}

// DetectIP returns the first global unicast IPv4 address of an interface
// that is up, or 127.0.0.1 on a machine without one. Nodes should set
// --advertise-ip (BERTH_ADVERTISE_IP) explicitly when they have several.
func DetectIP() string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "127.0.0.1"
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}
