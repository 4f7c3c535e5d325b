package dnsd

import (
	"context"
	"testing"

	"github.com/miekg/dns"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// TestDeletedAppIsNXDOMAIN: once an app is deleted (marked, then purged
// after its units stopped) its names answer NXDOMAIN with the SOA; other
// apps keep answering.
func TestDeletedAppIsNXDOMAIN(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	for _, name := range []string{"web", "api"} {
		a := &spec.App{APIVersion: spec.APIVersion, Name: name, Image: "x", Domains: []string{name + ".example.com"}}
		a.SetDefaults()
		if err := registry.PublishApp(ctx, e.cli, e.keys, a); err != nil {
			t.Fatal(err)
		}
	}
	e.instance("web", "1", registry.Instance{Addr: "10.0.0.1:8080", Node: "n1", Tags: []string{"http"}})
	e.instance("api", "1", registry.Instance{Addr: "10.0.0.2:8080", Node: "n1"})
	names := []struct {
		name  string
		qtype uint16
	}{
		{"web.service.berth.", dns.TypeA},
		{"web.service.berth.", dns.TypeSRV},
		{"_web._tcp.service.berth.", dns.TypeSRV},
		{"http.web.service.berth.", dns.TypeA},
		{"web-1.n1.node.berth.", dns.TypeA},
	}
	for _, n := range names {
		if r := e.query(n.name, n.qtype, "udp", 0); r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			t.Fatalf("%s %s before the delete: %v", n.name, dns.TypeToString[n.qtype], r)
		}
	}
	if _, err := registry.MarkDeleted(ctx, e.cli, e.keys, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.PurgeApp(ctx, e.cli, e.keys, "web", ""); err != nil {
		t.Fatal(err)
	}
	resp, err := e.cli.Get(ctx, "/sync")
	if err != nil {
		t.Fatal(err)
	}
	e.sync(resp.Header.Revision)
	for _, n := range names {
		t.Run(n.name+" "+dns.TypeToString[n.qtype], func(t *testing.T) {
			r := e.query(n.name, n.qtype, "udp", 0)
			if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
				t.Errorf("after the delete: %v, want NXDOMAIN with the SOA", r)
			}
		})
	}
	if r := e.query("api.service.berth.", dns.TypeA, "udp", 0); r.Rcode != dns.RcodeSuccess || len(answers(r)) != 1 {
		t.Errorf("api after web's delete: %v", r)
	}
}
