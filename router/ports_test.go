package router

import (
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/registry"
)

// TestRoutesToThePrimaryPort: an instance that lists several ports gets
// requests on its primary (first) port only, never on the others (the
// spec has no way to route a domain to another port), and a record of an
// older writer, without ports, keeps being routed beside it.
func TestRoutesToThePrimaryPort(t *testing.T) {
	e := newEnv(t, Config{})
	httpSrv, _ := backend(t, "http")
	metricsSrv, metricsHits := backend(t, "metrics")
	oldSrv, _ := backend(t, "old")
	in := registry.Instance{State: registry.StateUp}
	in.SetPorts([]registry.NamedPort{
		{Name: "http", Addr: addr(httpSrv), Proto: "tcp", Tags: []string{"http"}},
		{Name: "metrics", Addr: addr(metricsSrv), Proto: "tcp"},
	})
	k, _ := e.keys.Instance("shop-api", "1")
	e.put(k, in)
	k, _ = e.keys.Instance("shop-api", "2")
	resp, err := e.cli.Put(t.Context(), k, `{"addr":"`+addr(oldSrv)+`","node":"n1","unit":"shop-api@2.service","tags":["http"],"version":"2.3.0","state":"up"}`)
	if err != nil {
		t.Fatal(err)
	}
	e.waitRev(resp.Header.Revision)
	e.domain("shop.example.com", "shop-api")
	got := map[string]int{}
	for range 10 {
		resp, body := e.get("shop.example.com", "/")
		if resp.StatusCode != 200 {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		got[strings.Fields(body)[0]]++
	}
	if got["http"] != 5 || got["old"] != 5 || metricsHits.Load() != 0 {
		t.Errorf("requests per backend %v, metrics port %d: want 5 each on the primary ports and none on metrics", got, metricsHits.Load())
	}
}
