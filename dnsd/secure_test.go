package dnsd

import (
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

// TestDNSDAsDNSRole: dnsd following etcd over TLS as berth-dns, its
// read-only role, answers for the instances an agent registers; the same
// connection cannot write the routers' certificate recipient.
func TestDNSDAsDNSRole(t *testing.T) {
	s, p := etcdtest.Secure(t)
	agent := etcdtest.SecureClient(t, s, p, etcdauth.Agent)
	d := etcdtest.SecureClient(t, s, p, etcdauth.DNS)
	e := newEnvOn(t, Config{}, agent, d)
	e.instance("web", "1", registry.Instance{Addr: "10.0.0.1:8080", Node: "n1"})
	if got := strings.Join(answers(e.query("web.service.berth.", dns.TypeA, "udp", 0)), " "); got != "10.0.0.1" {
		t.Errorf("web.service.berth. A as berth-dns: got %q, want 10.0.0.1", got)
	}
	k, err := registry.NewKeys("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(t.Context(), k.CertRecipient(), "{}"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("put %s as berth-dns: %v, want permission denied", k.CertRecipient(), err)
	}
}
