package dnsd

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"sort"
	"strings"

	"github.com/miekg/dns"

	"github.com/berthproject/berth/internal/registry"
)

// target is one SRV target: an instance's name, address and port.
type target struct {
	name string // <app>-<id>.<node>.node.<zone>
	ip   netip.Addr
	port uint16
}

// node is what a name answers.
type node struct {
	targets []target     // A/AAAA/SRV answers (services, instance names)
	addrs   []netip.Addr // A/AAAA of node names
	srvOnly bool         // _x._tcp names answer SRV only
	ent     bool         // an empty non-terminal: _tcp.<app>.service.<zone>, _udp...
	ptr     string       // reverse names
}

// appEntry remembers which names an app produced, and from which map of
// the registry snapshot, so that an unchanged app is not rebuilt.
type appEntry struct {
	src   uintptr  // identity of the snapshot's instance map of the app
	names []string // names owned by the app
	nodes map[string][]netip.Addr
}

// View is an immutable map of every name served, built from a registry
// snapshot. After a change only the apps whose instances changed are
// rebuilt (the watch cache copies an app's map only when it changes).
type View struct {
	Rev      int64
	names    map[string]*node              // lowercase FQDN → records
	apps     map[string]appEntry           // app → its names
	nodeRefs map[string]map[netip.Addr]int // node label → instance addresses on it
	nodesSrc uintptr                       // identity of the snapshot's node map
	agents   map[string]netip.Addr         // node label → agent-advertised address
	zone     string
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

func identity(m any) uintptr {
	v := reflect.ValueOf(m)
	if !v.IsValid() || v.IsNil() {
		return 0
	}
	return v.Pointer()
}

// buildView computes every name of the zone from a snapshot.
func buildView(s *registry.Snapshot, cfg *Config) *View {
	return (&View{zone: cfg.Zone}).update(s, cfg)
}

// update returns the view of snapshot s, reusing what v computed for every
// app whose instances did not change.
func (v *View) update(s *registry.Snapshot, cfg *Config) *View {
	nv := &View{Rev: s.Rev, zone: cfg.Zone, names: maps.Clone(v.names), apps: maps.Clone(v.apps),
		nodeRefs: maps.Clone(v.nodeRefs), agents: v.agents, nodesSrc: v.nodesSrc}
	if nv.names == nil {
		nv.names, nv.apps, nv.nodeRefs = map[string]*node{}, map[string]appEntry{}, map[string]map[netip.Addr]int{}
	}
	touched := map[string]bool{} // node labels whose addresses may change
	ownRefs := map[string]bool{} // nodeRefs inner maps already copied
	ref := func(nodeLabel string, ip netip.Addr, delta int) {
		if !ownRefs[nodeLabel] {
			nv.nodeRefs[nodeLabel] = maps.Clone(nv.nodeRefs[nodeLabel])
			if nv.nodeRefs[nodeLabel] == nil {
				nv.nodeRefs[nodeLabel] = map[netip.Addr]int{}
			}
			ownRefs[nodeLabel] = true
		}
		nv.nodeRefs[nodeLabel][ip] += delta
		if nv.nodeRefs[nodeLabel][ip] <= 0 {
			delete(nv.nodeRefs[nodeLabel], ip)
		}
		touched[nodeLabel] = true
	}
	drop := func(app string) {
		old := nv.apps[app]
		for _, n := range old.names {
			delete(nv.names, n)
		}
		for nl, ips := range old.nodes {
			for _, ip := range ips {
				ref(nl, ip, -1)
			}
		}
		delete(nv.apps, app)
	}
	for app := range nv.apps {
		if _, ok := s.Instances[app]; !ok {
			drop(app)
		}
	}
	for app, instances := range s.Instances {
		id := identity(instances)
		if e, ok := nv.apps[app]; ok && e.src == id {
			continue
		}
		drop(app)
		e := nv.addApp(app, instances, cfg)
		e.src = id
		nv.apps[app] = e
		for nl, ips := range e.nodes {
			for _, ip := range ips {
				ref(nl, ip, 1)
			}
		}
	}
	if id := identity(s.Nodes); id != nv.nodesSrc || nv.agents == nil {
		nv.nodesSrc = id
		agents := map[string]netip.Addr{}
		for nid, n := range s.Nodes {
			if ip, err := netip.ParseAddr(n.Addr); err == nil {
				agents[label(nid)] = ip.Unmap()
			}
		}
		for nl := range nv.agents {
			touched[nl] = true
		}
		for nl := range agents {
			touched[nl] = true
		}
		nv.agents = agents
	}
	for nl := range touched {
		name := nl + ".node." + cfg.Zone
		var addrs []netip.Addr
		if ip, ok := nv.agents[nl]; ok {
			addrs = []netip.Addr{ip} // the agent's advertised address wins
		} else {
			for ip := range nv.nodeRefs[nl] {
				addrs = append(addrs, ip)
			}
		}
		if len(addrs) == 0 {
			delete(nv.names, name)
			continue
		}
		sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
		nv.names[name] = &node{addrs: addrs}
	}
	return nv
}

// addApp adds the names of one app's live instances to nv.names (fresh
// nodes: nothing shared with the previous view is modified).
func (nv *View) addApp(app string, instances map[string]*registry.Instance, cfg *Config) appEntry {
	e := appEntry{nodes: map[string][]netip.Addr{}}
	zone := cfg.Zone
	fresh := map[string]*node{}
	get := func(name string) *node {
		n := fresh[name]
		if n == nil {
			n = &node{}
			fresh[name] = n
			e.names = append(e.names, name)
		}
		return n
	}
	ids := make([]string, 0, len(instances))
	for id := range instances {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	appLabel := label(app)
	svc := appLabel + ".service." + zone
	for _, id := range ids {
		in := instances[id]
		if in.State != registry.StateUp {
			continue
		}
		ip, port, ok := hostPort(in.Addr)
		if !ok {
			continue // a host name, not an address: not servable as A
		}
		nodeLabel := "local"
		if in.Node != "" {
			nodeLabel = label(in.Node)
		}
		t := target{name: label(app+"-"+id) + "." + nodeLabel + ".node." + zone, ip: ip, port: port}
		get(svc).targets = append(get(svc).targets, t)
		rfc := get("_" + appLabel + "._tcp.service." + zone)
		rfc.srvOnly = true
		rfc.targets = append(rfc.targets, t)
		// Every port by name (the primary one first, with the record's
		// tags), each with the port's own address.
		for _, p := range in.PortList() {
			pt := t
			if p.Addr != in.Addr {
				pip, pport, ok := hostPort(p.Addr)
				if !ok || pip != ip {
					continue // a port on another host: not this target's
				}
				pt.port = pport
			}
			name := cmp.Or(p.Name, app) // a record whose App was not set from its key
			get("_" + p.Proto + "." + svc).ent = true
			byPort := get("_" + label(name) + "._" + p.Proto + "." + svc)
			byPort.srvOnly = true
			byPort.targets = append(byPort.targets, pt)
			for _, tag := range p.Tags {
				tn := get(label(tag) + "." + svc)
				tn.targets = append(tn.targets, pt)
			}
		}
		get(t.name).targets = []target{t}
		e.nodes[nodeLabel] = append(e.nodes[nodeLabel], ip)
		if cfg.Reverse {
			if rev, err := dns.ReverseAddr(ip.String()); err == nil {
				get(rev).ptr = t.name
			}
		}
	}
	for name, n := range fresh {
		nv.names[name] = n
	}
	return e
}

// hostPort splits an instance's "ip:port"; ok is false for a host name.
func hostPort(addr string) (ip netip.Addr, port uint16, ok bool) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	return ap.Addr().Unmap(), ap.Port(), true
}

// isEmptyNonTerminal reports the fixed names that exist only as parents of
// others: service.<zone>, node.<zone> and _tcp.service.<zone>. An app's
// _tcp.<app>.service.<zone> (and _udp...) are nodes of the view marked ent.
func (v *View) isEmptyNonTerminal(name string) bool {
	switch name {
	case "service." + v.zone, "node." + v.zone, "_tcp.service." + v.zone:
		return true
	}
	return false
}

// Names lists every name with records, sorted (for "berth dns").
func (v *View) Names() []string {
	out := make([]string, 0, len(v.names))
	for n, node := range v.names {
		if !node.ent {
			out = append(out, n)
		}
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
