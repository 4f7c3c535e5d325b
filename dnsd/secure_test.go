package dnsd

import (
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

// TestDNSDAsReader: dnsd following etcd over TLS as berth-reader answers
// for the instances an agent registers.
func TestDNSDAsReader(t *testing.T) {
	s, p := etcdtest.Secure(t)
	agent := etcdtest.SecureClient(t, s, p, etcdauth.Agent)
	reader := etcdtest.SecureClient(t, s, p, etcdauth.Reader)
	e := newEnvOn(t, Config{}, agent, reader)
	e.instance("web", "1", registry.Instance{Addr: "10.0.0.1:8080", Node: "n1"})
	if got := strings.Join(answers(e.query("web.service.berth.", dns.TypeA, "udp", 0)), " "); got != "10.0.0.1" {
		t.Errorf("web.service.berth. A as berth-reader: got %q, want 10.0.0.1", got)
	}
}
