package dnsd

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/berthproject/berth/internal/registry"
)

// target is one SRV target: an instance's name, address and port.
type target struct {
	name string // <instance>.<node>.node.<zone>
	ip   netip.Addr
	port uint16
}

// node is what a name answers.
type node struct {
	targets []target     // A/AAAA/SRV answers (services, instance names)
	addrs   []netip.Addr // A/AAAA of node names
	srvOnly bool         // _x._tcp names answer SRV only
	ptr     string       // reverse names
}

// View is an immutable map of every name served, built from one registry
// snapshot.
type View struct {
	Rev   int64
	names map[string]*node // lowercase FQDN → records
	ents  map[string]bool  // empty non-terminals: exist, no records
}

// label makes a DNS-safe label of any id: lowercase, characters outside
// [a-z0-9-] become '-', trimmed to 63.
func label(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	if len(b) == 0 {
		return "x"
	}
	return string(b)
}

// buildView computes every name of the zone from a snapshot.
func buildView(s *registry.Snapshot, cfg *Config) *View {
	v := &View{Rev: s.Rev, names: map[string]*node{}, ents: map[string]bool{}}
	zone := cfg.Zone
	get := func(name string) *node {
		n := v.names[name]
		if n == nil {
			n = &node{}
			v.names[name] = n
		}
		return n
	}
	nodeAddrs := map[string]map[netip.Addr]bool{}
	for app, instances := range s.Instances {
		ids := make([]string, 0, len(instances))
		for id := range instances {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			in := instances[id]
			if in.State != registry.StateUp {
				continue
			}
			host, portStr, err := net.SplitHostPort(in.Addr)
			if err != nil {
				continue
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				continue // a host name, not an address: not servable as A
			}
			ip = ip.Unmap()
			port, _ := strconv.ParseUint(portStr, 10, 16)
			nodeLabel := label(in.Node)
			if in.Node == "" {
				nodeLabel = "local"
			}
			t := target{name: label(app+"-"+id) + "." + nodeLabel + ".node." + zone, ip: ip, port: uint16(port)}
			svc := label(app) + ".service." + zone
			get(svc).targets = append(get(svc).targets, t)
			rfc := get("_" + label(app) + "._tcp.service." + zone)
			rfc.srvOnly = true
			rfc.targets = append(rfc.targets, t)
			portName := in.Port
			if portName == "" {
				portName = app
			}
			byPort := get("_" + label(portName) + "._tcp." + svc)
			byPort.srvOnly = true
			byPort.targets = append(byPort.targets, t)
			for _, tag := range in.Tags {
				tn := get(label(tag) + "." + svc)
				tn.targets = append(tn.targets, t)
			}
			get(t.name).targets = []target{t}
			if nodeAddrs[nodeLabel] == nil {
				nodeAddrs[nodeLabel] = map[netip.Addr]bool{}
			}
			nodeAddrs[nodeLabel][ip] = true
			if cfg.Reverse {
				if rev, err := dns.ReverseAddr(ip.String()); err == nil {
					get(rev).ptr = t.name
				}
			}
		}
	}
	for id, n := range s.Nodes {
		if ip, err := netip.ParseAddr(n.Addr); err == nil {
			l := label(id)
			if nodeAddrs[l] == nil {
				nodeAddrs[l] = map[netip.Addr]bool{}
			}
			nodeAddrs[l] = map[netip.Addr]bool{ip.Unmap(): true} // the agent's advertised address wins
		}
	}
	for l, addrs := range nodeAddrs {
		n := get(l + ".node." + zone)
		for ip := range addrs {
			n.addrs = append(n.addrs, ip)
		}
		sort.Slice(n.addrs, func(i, j int) bool { return n.addrs[i].Less(n.addrs[j]) })
	}
	// Every proper suffix inside the zone is an empty non-terminal.
	for name := range v.names {
		for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
			suffix := name[off:]
			if !dns.IsSubDomain(zone, suffix) || suffix == zone {
				break
			}
			if v.names[suffix] == nil {
				v.ents[suffix] = true
			}
		}
	}
	return v
}

// Names lists every name with records, sorted (for "berth dns").
func (v *View) Names() []string {
	out := make([]string, 0, len(v.names))
	for n := range v.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Record is one answer dnsd gives, for listings.
type Record struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Records lists every record the view of snapshot s answers, sorted.
func (s *Server) Records(snap *registry.Snapshot) []Record {
	v := buildView(snap, &s.cfg)
	var out []Record
	for _, name := range v.Names() {
		n := v.names[name]
		if n.ptr != "" {
			out = append(out, Record{name, "PTR", n.ptr})
			continue
		}
		if !n.srvOnly {
			for _, ip := range addrsOf(n) {
				t := "A"
				if ip.Is6() {
					t = "AAAA"
				}
				out = append(out, Record{name, t, ip.String()})
			}
		}
		if !strings.HasSuffix(name, ".node."+s.cfg.Zone) {
			for _, t := range n.targets {
				out = append(out, Record{name, "SRV", fmt.Sprintf("1 1 %d %s", t.port, t.name)})
			}
		}
	}
	return out
}
