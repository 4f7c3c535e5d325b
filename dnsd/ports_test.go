package dnsd

import (
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/berthproject/berth/internal/registry"
)

// TestNamedPorts: an app with two ports (examples/multi-port.yaml) answers
// SRV for each port by name with that port, tags per port, and the plain
// service names with the primary port; a record written before records
// listed their ports ("web") still answers as it did.
func TestNamedPorts(t *testing.T) {
	e := newEnv(t, Config{})
	for id, ip := range map[string]string{"1": "10.0.0.1", "2": "10.0.0.2"} {
		in := registry.Instance{Node: "n1"}
		in.SetPorts([]registry.NamedPort{
			{Name: "http", Addr: ip + ":8080", Proto: "tcp", Tags: []string{"http", "public"}},
			{Name: "metrics", Addr: ip + ":9090", Proto: "tcp", Tags: []string{"prometheus"}},
			{Name: "stats", Addr: ip + ":8125", Proto: "udp"},
		})
		e.instance("shop-api", id, in)
	}
	e.instance("web", "1", registry.Instance{Addr: "10.0.0.3:80", Node: "n2", Tags: []string{"http"}})
	const t1, t2 = "shop-api-1.n1.node.berth.", "shop-api-2.n1.node.berth."
	cases := []struct {
		name  string
		qtype uint16
		want  string
	}{
		{"_metrics._tcp.shop-api.service.berth.", dns.TypeSRV, "9090 " + t1 + " 9090 " + t2},
		{"_http._tcp.shop-api.service.berth.", dns.TypeSRV, "8080 " + t1 + " 8080 " + t2},
		{"_stats._udp.shop-api.service.berth.", dns.TypeSRV, "8125 " + t1 + " 8125 " + t2},
		{"shop-api.service.berth.", dns.TypeSRV, "8080 " + t1 + " 8080 " + t2},
		{"_shop-api._tcp.service.berth.", dns.TypeSRV, "8080 " + t1 + " 8080 " + t2},
		{"shop-api.service.berth.", dns.TypeA, "10.0.0.1 10.0.0.2"},
		{"prometheus.shop-api.service.berth.", dns.TypeSRV, "9090 " + t1 + " 9090 " + t2},
		{"prometheus.shop-api.service.berth.", dns.TypeA, "10.0.0.1 10.0.0.2"},
		{"public.shop-api.service.berth.", dns.TypeSRV, "8080 " + t1 + " 8080 " + t2},
		{"shop-api-1.n1.node.berth.", dns.TypeA, "10.0.0.1"},
		// The old record: its primary port under the app's name.
		{"_web._tcp.web.service.berth.", dns.TypeSRV, "80 web-1.n2.node.berth."},
		{"web.service.berth.", dns.TypeSRV, "80 web-1.n2.node.berth."},
		{"http.web.service.berth.", dns.TypeA, "10.0.0.3"},
	}
	for _, c := range cases {
		r := e.query(c.name, c.qtype, "udp", 0)
		if got := strings.Join(answers(r), " "); got != c.want || r.Rcode != dns.RcodeSuccess {
			t.Errorf("%s %s: got %q rcode %s, want %q", c.name, dns.TypeToString[c.qtype], got, dns.RcodeToString[r.Rcode], c.want)
		}
	}

	// Unknown port names do not exist (NXDOMAIN: nothing lives below
	// them); the _tcp/_udp parents of existing ports are empty
	// non-terminals (NODATA), as are port names asked for another type.
	negative := []struct {
		name  string
		qtype uint16
		rcode int
	}{
		{"_nope._tcp.shop-api.service.berth.", dns.TypeSRV, dns.RcodeNameError},
		{"_metrics._udp.shop-api.service.berth.", dns.TypeSRV, dns.RcodeNameError},
		{"_metrics._tcp.web.service.berth.", dns.TypeSRV, dns.RcodeNameError},
		{"_udp.web.service.berth.", dns.TypeSRV, dns.RcodeNameError},
		{"_tcp.shop-api.service.berth.", dns.TypeSRV, dns.RcodeSuccess},
		{"_udp.shop-api.service.berth.", dns.TypeSRV, dns.RcodeSuccess},
		{"_tcp.web.service.berth.", dns.TypeA, dns.RcodeSuccess},
		{"_metrics._tcp.shop-api.service.berth.", dns.TypeA, dns.RcodeSuccess},
	}
	for _, c := range negative {
		r := e.query(c.name, c.qtype, "udp", 0)
		if r.Rcode != c.rcode || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("%s %s: got %s answers %v ns %v, want %s with the SOA", c.name, dns.TypeToString[c.qtype], dns.RcodeToString[r.Rcode], r.Answer, r.Ns, dns.RcodeToString[c.rcode])
		}
	}

	// dig, where installed, sees the metrics port.
	if _, err := exec.LookPath("dig"); err != nil {
		t.Log("dig not installed")
		return
	}
	host, port, _ := net.SplitHostPort(e.addr)
	out, err := exec.Command("dig", "@"+host, "-p", port, "+short", "_metrics._tcp.shop-api.service.berth", "SRV").CombinedOutput()
	got := strings.Fields(string(out))
	if err != nil || len(got) != 8 || got[2] != "9090" || got[6] != "9090" {
		t.Fatalf("dig SRV of the metrics port: %q %v", out, err)
	}
}
