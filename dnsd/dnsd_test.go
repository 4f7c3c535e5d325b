package dnsd

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/sirupsen/logrus/hooks/test"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdserver"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

type env struct {
	t    *testing.T
	cli  *clientv3.Client
	keys registry.Keys
	s    *Server
	addr string
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	_, cli := etcdtest.New(t)
	return newEnvOn(t, cfg, cli, cli)
}

// newEnvOn is newEnv with the test writing through cli and dnsd's cache
// reading through rcli.
func newEnvOn(t *testing.T, cfg Config, cli, rcli *clientv3.Client) *env {
	t.Helper()
	k, _ := registry.NewKeys("")
	log, _ := test.NewNullLogger()
	cache := registry.NewCache(rcli, rcli, registry.CacheConfig{Keys: k, Progress: 100 * time.Millisecond}, log)
	s, err := New(cfg, cache, log)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	started := make(chan struct{})
	go func() { defer wg.Done(); cache.Run(ctx) }()
	go func() { defer wg.Done(); s.Run(ctx) }()
	go func() { defer wg.Done(); s.Serve(ctx, ls, func() { close(started) }) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	<-started
	e := &env{t: t, cli: cli, keys: k, s: s, addr: ls.UDP[0].LocalAddr().String()}
	e.sync(0)
	return e
}

func (e *env) sync(rev int64) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !e.s.Ready() || e.s.View().Rev < rev {
		if time.Now().After(deadline) {
			e.t.Fatalf("view not at revision %d", rev)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (e *env) instance(app, id string, in registry.Instance) {
	e.t.Helper()
	k, _ := e.keys.Instance(app, id)
	if in.State == "" {
		in.State = registry.StateUp
	}
	b, _ := json.Marshal(in)
	resp, err := e.cli.Put(context.Background(), k, string(b))
	if err != nil {
		e.t.Fatal(err)
	}
	e.sync(resp.Header.Revision)
}

func (e *env) query(name string, qtype uint16, network string, edns uint16) *dns.Msg {
	e.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, e.addr)
	if err != nil {
		e.t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return r
}

func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch r := rr.(type) {
		case *dns.A:
			out = append(out, r.A.String())
		case *dns.AAAA:
			out = append(out, r.AAAA.String())
		case *dns.SRV:
			out = append(out, fmt.Sprintf("%d %s", r.Port, r.Target))
		case *dns.PTR:
			out = append(out, r.Ptr)
		}
	}
	sort.Strings(out)
	return out
}

func TestServiceNames(t *testing.T) {
	e := newEnv(t, Config{Reverse: true})
	e.instance("web", "1", registry.Instance{Addr: "10.0.0.1:8080", Node: "n1", Tags: []string{"http"}})
	e.instance("web", "2", registry.Instance{Addr: "10.0.0.2:8081", Node: "n2"})
	e.instance("web", "3", registry.Instance{Addr: "[fd00::3]:8082", Node: "n2", Tags: []string{"http"}})
	e.instance("web", "4", registry.Instance{Addr: "10.0.0.4:8083", Node: "n1", State: registry.StateDraining})
	cases := []struct {
		name  string
		qtype uint16
		want  string
	}{
		{"web.service.berth.", dns.TypeA, "10.0.0.1 10.0.0.2"},
		{"WEB.Service.Berth.", dns.TypeA, "10.0.0.1 10.0.0.2"},
		{"web.service.berth.", dns.TypeAAAA, "fd00::3"},
		{"http.web.service.berth.", dns.TypeA, "10.0.0.1"},
		{"web.service.berth.", dns.TypeSRV, "8080 web-1.n1.node.berth. 8081 web-2.n2.node.berth. 8082 web-3.n2.node.berth."},
		{"_web._tcp.service.berth.", dns.TypeSRV, "8080 web-1.n1.node.berth. 8081 web-2.n2.node.berth. 8082 web-3.n2.node.berth."},
		{"_web._tcp.web.service.berth.", dns.TypeSRV, "8080 web-1.n1.node.berth. 8081 web-2.n2.node.berth. 8082 web-3.n2.node.berth."},
		{"web-1.n1.node.berth.", dns.TypeA, "10.0.0.1"},
		{"n2.node.berth.", dns.TypeA, "10.0.0.2"},
		{"1.0.0.10.in-addr.arpa.", dns.TypePTR, "web-1.n1.node.berth."},
	}
	for _, c := range cases {
		for _, network := range []string{"udp", "tcp"} {
			r := e.query(c.name, c.qtype, network, 0)
			if got := strings.Join(answers(r), " "); got != c.want || r.Rcode != dns.RcodeSuccess || !r.Authoritative {
				t.Errorf("%s %s over %s: got %q rcode %s aa=%v, want %q", c.name, dns.TypeToString[c.qtype], network, got, dns.RcodeToString[r.Rcode], r.Authoritative, c.want)
			}
		}
	}
	// The query's case is preserved in the answer.
	if r := e.query("WEB.Service.Berth.", dns.TypeA, "udp", 0); r.Answer[0].Header().Name != "WEB.Service.Berth." {
		t.Errorf("answer name %q, want the query's case", r.Answer[0].Header().Name)
	}
	// SRV targets' addresses come in the additional section.
	if r := e.query("web.service.berth.", dns.TypeSRV, "udp", 0); len(r.Extra) != 3 {
		t.Errorf("SRV additional section: got %d records, want 3", len(r.Extra))
	}
}

func TestNegativeAnswers(t *testing.T) {
	e := newEnv(t, Config{NegativeTTL: 3 * time.Second})
	e.instance("web", "1", registry.Instance{Addr: "10.0.0.1:80", Node: "n1"})
	cases := []struct {
		name  string
		qtype uint16
		rcode int
		soa   bool
	}{
		{"nope.service.berth.", dns.TypeA, dns.RcodeNameError, true},
		{"web.service.berth.", dns.TypeMX, dns.RcodeSuccess, true},      // NODATA
		{"web.service.berth.", dns.TypeAAAA, dns.RcodeSuccess, true},    // NODATA
		{"service.berth.", dns.TypeA, dns.RcodeSuccess, true},           // empty non-terminal
		{"_web._tcp.service.berth.", dns.TypeA, dns.RcodeSuccess, true}, // SRV-only name
		{"example.com.", dns.TypeA, dns.RcodeRefused, false},            // not our zone, no forwarding
		{"berth.", dns.TypeSOA, dns.RcodeSuccess, false},
	}
	for _, c := range cases {
		r := e.query(c.name, c.qtype, "udp", 0)
		hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA && r.Ns[0].Header().Ttl == 3
		if r.Rcode != c.rcode || hasSOA != c.soa {
			t.Errorf("%s %s: got %s soa=%v, want %s soa=%v", c.name, dns.TypeToString[c.qtype], dns.RcodeToString[r.Rcode], hasSOA, dns.RcodeToString[c.rcode], c.soa)
		}
	}
	if r := e.query("web.service.berth.", dns.TypeANY, "udp", 0); len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeHINFO {
		t.Errorf("ANY: got %v, want one HINFO (RFC 8482)", r.Answer)
	}
	if r := e.query("berth.", dns.TypeNS, "udp", 0); len(r.Answer) != 1 {
		t.Errorf("NS at apex: got %v", r.Answer)
	}
	if r := e.query("web.service.berth.", dns.TypeA, "udp", 0); r.RecursionAvailable {
		t.Error("recursion available on an authoritative-only server")
	}
}

func TestTruncationAndTCP(t *testing.T) {
	e := newEnv(t, Config{})
	for i := range 60 {
		e.instance("big", fmt.Sprint(i), registry.Instance{Addr: fmt.Sprintf("10.1.0.%d:%d", i+1, 9000+i), Node: "node-with-a-long-name"})
	}
	udp := e.query("big.service.berth.", dns.TypeSRV, "udp", 0)
	udp.Compress = true // measure the size as it was on the wire
	if !udp.Truncated || udp.Len() > 512 {
		t.Errorf("plain UDP: TC=%v size %d, want truncated to 512", udp.Truncated, udp.Len())
	}
	edns := e.query("big.service.berth.", dns.TypeSRV, "udp", 1232)
	edns.Compress = true
	if !edns.Truncated || edns.Len() > 1232 || len(edns.Answer) <= len(udp.Answer) {
		t.Errorf("EDNS 1232: TC=%v size %d answers %d", edns.Truncated, edns.Len(), len(edns.Answer))
	}
	tcp := e.query("big.service.berth.", dns.TypeSRV, "tcp", 0)
	if tcp.Truncated || len(tcp.Answer) != 60 {
		t.Errorf("TCP: TC=%v answers %d, want all 60", tcp.Truncated, len(tcp.Answer))
	}
	a := e.query("big.service.berth.", dns.TypeA, "udp", 4096)
	if len(a.Answer) != 60 {
		t.Errorf("A with EDNS 4096: %d answers, want 60", len(a.Answer))
	}
}

func TestDig(t *testing.T) {
	e := newEnv(t, Config{})
	e.instance("web", "1", registry.Instance{Addr: "10.0.0.1:8080", Node: "n1"})
	host, port, _ := net.SplitHostPort(e.addr)
	out, err := exec.Command("dig", "@"+host, "-p", port, "+short", "web.service.berth", "A").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "10.0.0.1" {
		t.Fatalf("dig: %q %v", out, err)
	}
	out, err = exec.Command("dig", "@"+host, "-p", port, "+tcp", "+short", "_web._tcp.service.berth", "SRV").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1 1 8080 web-1.n1.node.berth." {
		t.Fatalf("dig SRV: %q %v", out, err)
	}
}

func TestServfailWhenStale(t *testing.T) {
	srv, err := etcdserver.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	cli := etcdtest.Client(t, srv.Endpoint)
	k, _ := registry.NewKeys("")
	log, _ := test.NewNullLogger()
	cache := registry.NewCache(cli, cli, registry.CacheConfig{Keys: k, Progress: 50 * time.Millisecond, RequestTimeout: 200 * time.Millisecond}, log)
	s, _ := New(Config{StaleAfter: 300 * time.Millisecond}, cache, log)
	// Before the first sync: SERVFAIL, never NXDOMAIN.
	ls, _ := Listen("127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	go s.Serve(ctx, ls, func() { close(started) })
	<-started
	e := &env{t: t, s: s, addr: ls.UDP[0].LocalAddr().String()}
	if r := e.query("web.service.berth.", dns.TypeA, "udp", 0); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("before sync: got %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	go cache.Run(ctx)
	go s.Run(ctx)
	e.sync(0)
	if r := e.query("web.service.berth.", dns.TypeA, "udp", 0); r.Rcode != dns.RcodeNameError {
		t.Fatalf("synced: got %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	srv.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.query("web.service.berth.", dns.TypeA, "udp", 0)
		if r.Rcode == dns.RcodeServerFailure {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd down past the stale bound: still %s", dns.RcodeToString[r.Rcode])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestForwardingOnlyForAllowedClients(t *testing.T) {
	// An upstream resolver of our own on loopback.
	up := dns.NewServeMux()
	up.HandleFunc("example.com.", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr(r.Question[0].Name, dns.TypeA, 60), A: net.IPv4(192, 0, 2, 1)})
		w.WriteMsg(m)
	})
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	upSrv := &dns.Server{PacketConn: pc, Handler: up}
	go upSrv.ActivateAndServe()
	defer upSrv.Shutdown()
	e := newEnv(t, Config{Forward: []string{pc.LocalAddr().String()}})
	if r := e.query("example.com.", dns.TypeA, "udp", 0); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("forwarded for loopback: %v", r)
	}
	// Only a network this client is not in may use the forwarder.
	e2 := newEnv(t, Config{Forward: []string{pc.LocalAddr().String()}, ForwardAllow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	if r := e2.query("example.com.", dns.TypeA, "udp", 0); r.Rcode != dns.RcodeRefused {
		t.Fatalf("forwarding for a client outside the allowed networks: got %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
}

func FuzzQueryName(f *testing.F) {
	for _, s := range []string{"web.service.berth.", "_web._tcp.service.berth.", "a..b.", ".", "\\000.berth.", "x.node.berth.", "_m._udp.web.service.berth.", "_tcp.web.service.berth."} {
		f.Add(s, uint16(dns.TypeA))
	}
	log, _ := test.NewNullLogger()
	snap := &registry.Snapshot{Instances: map[string]map[string]*registry.Instance{"web": {"1": {ID: "1", Addr: "10.0.0.1:80", State: registry.StateUp, Tags: []string{"x"},
		Ports: map[string]registry.InstancePort{"m": {Addr: "10.0.0.1:81", Proto: "udp", Tags: []string{"x", "y"}}}}}}}
	src := staticSource{snap}
	s, _ := New(Config{Reverse: true}, src, log)
	s.view.Store(buildView(snap, &s.cfg))
	s.ready.Store(true)
	f.Fuzz(func(t *testing.T, name string, qtype uint16) {
		req := new(dns.Msg)
		req.SetQuestion(name, qtype)
		m := s.answer(fakeWriter{}, req)
		if m == nil {
			t.Fatal("nil answer without forwarding")
		}
		if _, err := m.Pack(); err != nil && dns.IsFqdn(name) {
			if _, ok := dns.IsDomainName(name); ok {
				t.Fatalf("answer to %q does not pack: %v", name, err)
			}
		}
	})
}

type staticSource struct{ s *registry.Snapshot }

func (s staticSource) Snapshot() *registry.Snapshot         { return s.s }
func (s staticSource) Subscribe() (<-chan struct{}, func()) { return make(chan struct{}), func() {} }
func (s staticSource) Synced() <-chan struct{}              { c := make(chan struct{}); close(c); return c }
func (s staticSource) Staleness() time.Duration             { return 0 }

type fakeWriter struct{ dns.ResponseWriter }

func (fakeWriter) RemoteAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353} }
