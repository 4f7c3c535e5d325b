package acmetest

import (
	"net"
	"strings"

	"github.com/miekg/dns"
)

// serveDNS answers from the record sets: the zone's SOA, its TXT records
// (Route53's quoted strings unquoted), and 127.0.0.1 for every A query.
func (f *Route53) serveDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: f.Zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns: "ns-1.awsdns-00.com.", Mbox: "awsdns-hostmaster.amazon.com.", Serial: 1, Refresh: 7200, Retry: 900, Expire: 1209600, Minttl: 60}
	for _, qq := range q.Question {
		name := strings.ToLower(qq.Name)
		switch {
		case qq.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: net.IPv4(127, 0, 0, 1)})
		case !dns.IsSubDomain(f.Zone, name):
			m.Rcode = dns.RcodeRefused
		case qq.Qtype == dns.TypeSOA && name == f.Zone:
			m.Answer = append(m.Answer, soa)
		case qq.Qtype == dns.TypeTXT:
			f.mu.Lock()
			set := f.sets[rrKey{name, "TXT"}]
			if set != nil {
				for _, v := range set.Values {
					m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: uint32(set.TTL)},
						Txt: unquoteTXT(v)})
				}
			}
			f.mu.Unlock()
		}
		if len(m.Answer) == 0 && m.Rcode == dns.RcodeSuccess {
			m.Ns = append(m.Ns, soa)
		}
	}
	w.WriteMsg(m)
}

// unquoteTXT splits a Route53 TXT value ("a" "b") into its strings,
// escapes kept (\" and \\), as miekg/dns's TXT holds them.
func unquoteTXT(v string) []string {
	var out []string
	var cur strings.Builder
	in, esc := false, false
	for _, c := range v {
		switch {
		case esc:
			cur.WriteRune(c)
			esc = false
		case in && c == '\\':
			cur.WriteRune(c) // miekg/dns keeps TXT strings in presentation form
			esc = true
		case c == '"':
			if in {
				out = append(out, cur.String())
				cur.Reset()
			}
			in = !in
		case in:
			cur.WriteRune(c)
		}
	}
	return out
}
