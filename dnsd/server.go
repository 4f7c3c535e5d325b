package dnsd

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/registry"
)

// Source is the registry view dnsd answers from; it also tells how stale
// the view is.
type Source interface {
	registry.Source
	Staleness() time.Duration
}

// Server answers DNS queries; it is a dns.Handler. Run keeps its view in
// step with the Source.
type Server struct {
	cfg     Config
	src     Source
	log     logrus.FieldLogger
	view    atomic.Pointer[View]
	ready   atomic.Bool
	metrics *metrics
	fwd     *dns.Client
}

// New returns a server reading from src.
func New(cfg Config, src Source, log logrus.FieldLogger) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, src: src, log: log.WithField("component", "dnsd"), metrics: newMetrics(),
		fwd: &dns.Client{Timeout: 2 * time.Second}}
	s.view.Store(buildView(&registry.Snapshot{}, &s.cfg))
	return s, nil
}

// Zone is the zone served.
func (s *Server) Zone() string { return s.cfg.Zone }

// Collectors returns the Prometheus metrics.
func (s *Server) Collectors() []prometheus.Collector { return s.metrics.collectors() }

// Ready reports whether the first snapshot has been loaded.
func (s *Server) Ready() bool { return s.ready.Load() }

// View returns the current view.
func (s *Server) View() *View { return s.view.Load() }

// Run rebuilds the view after every registry change until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ch, cancel := s.src.Subscribe()
	defer cancel()
	select {
	case <-s.src.Synced():
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		s.view.Store(s.view.Load().update(s.src.Snapshot(), &s.cfg))
		s.ready.Store(true)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// ServeDNS answers one query. Errors become rcodes here, at the edge.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	m := s.answer(w, req)
	if m == nil {
		return // forwarded: already written
	}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(s.cfg.UDPSize, false)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(int(min(opt.UDPSize(), s.cfg.UDPSize)), dns.MinMsgSize)
		}
		// Most answers fit uncompressed; only larger ones pay for
		// compression and, if still too big, truncation (TC).
		if m.Len() > size {
			m.Compress = true
			m.Truncate(size)
		}
	}
	w.WriteMsg(m)
	var qtype uint16
	if len(req.Question) == 1 {
		qtype = req.Question[0].Qtype
	}
	s.metrics.count(qtype, m.Rcode)
	s.metrics.duration.Observe(time.Since(start).Seconds())
}

func (s *Server) answer(w dns.ResponseWriter, req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if req.Opcode != dns.OpcodeQuery {
		m.SetRcode(req, dns.RcodeNotImplemented)
		return m
	}
	if len(req.Question) != 1 {
		m.SetRcode(req, dns.RcodeFormatError)
		return m
	}
	q := req.Question[0]
	name := lower(q.Name)
	inZone := dns.IsSubDomain(s.cfg.Zone, name)
	inReverse := s.cfg.Reverse && (dns.IsSubDomain("in-addr.arpa.", name) || dns.IsSubDomain("ip6.arpa.", name))
	if !inZone && !inReverse {
		m.Authoritative = false
		if len(s.cfg.Forward) > 0 && s.forwardAllowed(w.RemoteAddr()) {
			s.forward(w, req)
			return nil
		}
		m.SetRcode(req, dns.RcodeRefused)
		return m
	}
	if !s.ready.Load() || s.src.Staleness() > s.cfg.StaleAfter {
		m.SetRcode(req, dns.RcodeServerFailure)
		return m
	}
	v := s.view.Load()
	ttl := uint32(s.cfg.TTL / time.Second)
	if name == s.cfg.Zone {
		switch q.Qtype {
		case dns.TypeSOA:
			m.Answer = append(m.Answer, s.soa(q.Name))
		case dns.TypeNS:
			m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(q.Name, dns.TypeNS, ttl), Ns: s.cfg.NS})
		default:
			m.Ns = append(m.Ns, s.soa(s.cfg.Zone))
		}
		return m
	}
	n := v.names[name]
	if n == nil || n.ent {
		if n == nil && !v.isEmptyNonTerminal(name) {
			m.Rcode = dns.RcodeNameError
		}
		m.Ns = append(m.Ns, s.soa(s.cfg.Zone))
		return m
	}
	if q.Qtype == dns.TypeANY {
		// RFC 8482: a minimal answer instead of everything.
		m.Answer = append(m.Answer, &dns.HINFO{Hdr: hdr(q.Name, dns.TypeHINFO, ttl), Cpu: "RFC8482"})
		return m
	}
	switch {
	case n.ptr != "" && q.Qtype == dns.TypePTR:
		m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr(q.Name, dns.TypePTR, ttl), Ptr: n.ptr})
	case (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA) && !n.srvOnly:
		for _, ip := range s.pick(addrsOf(n)) {
			if rr := addrRR(q.Name, ip, q.Qtype, ttl); rr != nil {
				m.Answer = append(m.Answer, rr)
			}
		}
	case q.Qtype == dns.TypeSRV && len(n.targets) > 0:
		targets := append([]target(nil), n.targets...)
		rand.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
		if s.cfg.MaxAnswers > 0 && len(targets) > s.cfg.MaxAnswers {
			targets = targets[:s.cfg.MaxAnswers]
		}
		for _, t := range targets {
			m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr(q.Name, dns.TypeSRV, ttl), Priority: 1, Weight: 1, Port: t.port, Target: t.name})
			qt := dns.TypeA
			if t.ip.Is6() {
				qt = dns.TypeAAAA
			}
			m.Extra = append(m.Extra, addrRR(t.name, t.ip, qt, ttl))
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = append(m.Ns, s.soa(s.cfg.Zone)) // NODATA
	}
	return m
}

// addrsOf is the addresses a name answers with: its targets' or its own.
func addrsOf(n *node) []netip.Addr {
	if len(n.addrs) > 0 {
		return n.addrs
	}
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, t := range n.targets {
		if !seen[t.ip] {
			seen[t.ip] = true
			out = append(out, t.ip)
		}
	}
	return out
}

// pick shuffles addrs (a copy) and applies MaxAnswers.
func (s *Server) pick(addrs []netip.Addr) []netip.Addr {
	out := append([]netip.Addr(nil), addrs...)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	if s.cfg.MaxAnswers > 0 && len(out) > s.cfg.MaxAnswers {
		out = out[:s.cfg.MaxAnswers]
	}
	return out
}

func addrRR(name string, ip netip.Addr, qtype uint16, ttl uint32) dns.RR {
	switch {
	case qtype == dns.TypeA && ip.Is4():
		return &dns.A{Hdr: hdr(name, dns.TypeA, ttl), A: net.IP(ip.AsSlice())}
	case qtype == dns.TypeAAAA && ip.Is6():
		return &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA, ttl), AAAA: net.IP(ip.AsSlice())}
	}
	return nil
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

func (s *Server) soa(name string) dns.RR {
	neg := uint32(s.cfg.NegativeTTL / time.Second)
	return &dns.SOA{Hdr: hdr(name, dns.TypeSOA, neg), Ns: s.cfg.NS, Mbox: "hostmaster." + s.cfg.Zone,
		Serial: uint32(s.view.Load().Rev), Refresh: 3600, Retry: 600, Expire: 86400, Minttl: neg}
}

func (s *Server) forwardAllowed(a net.Addr) bool {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	for _, p := range s.cfg.ForwardAllow {
		if p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// forward relays a query to the first upstream that answers.
func (s *Server) forward(w dns.ResponseWriter, req *dns.Msg) {
	for _, up := range s.cfg.Forward {
		resp, _, err := s.fwd.Exchange(req, up)
		if err == nil {
			w.WriteMsg(resp)
			s.metrics.queries.WithLabelValues(qtypeName(req.Question[0].Qtype), "forwarded").Inc()
			return
		}
		s.log.WithError(err).WithField("upstream", up).Debug("forward failed")
	}
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	w.WriteMsg(m)
}

// lower is strings.ToLower without an allocation for names already in
// lowercase (nearly all queries).
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
