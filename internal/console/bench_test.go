package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/berthproject/berth/internal/api"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// staticSource serves one snapshot: the benchmarks measure rendering,
// not the watch.
type staticSource struct {
	s      *registry.Snapshot
	synced chan struct{}
}

func (s staticSource) Snapshot() *registry.Snapshot { return s.s }
func (s staticSource) Subscribe() (<-chan struct{}, func()) {
	return make(chan struct{}), func() {}
}
func (s staticSource) Synced() <-chan struct{} { return s.synced }

// bigSnapshot is apps apps of per instances each, on nodes nodes, every
// app with a spec, two domains, a status and a router's access record,
// one app in ten mid-deploy.
func bigSnapshot(apps, per, nodes int) *registry.Snapshot {
	s := &registry.Snapshot{Rev: 12345, Apps: map[string]*spec.App{}, Domains: map[string]string{},
		Instances: map[string]map[string]*registry.Instance{}, Status: map[string]*registry.Status{},
		Access: map[string]map[string]*registry.Access{}, Nodes: map[string]*registry.Node{},
		Certs: map[string]*registry.StoredCert{}, Rollouts: map[string]*registry.Rollout{}}
	now := time.Now().UnixMilli()
	for n := range nodes {
		id := fmt.Sprintf("node-%03d", n)
		s.Nodes[id] = &registry.Node{ID: id, Addr: fmt.Sprintf("10.0.%d.%d", n/250, n%250+1), Metadata: map[string]string{"role": "worker", "az": "a"}}
	}
	for a := range apps {
		name := fmt.Sprintf("app-%04d", a)
		s.Apps[name] = &spec.App{Name: name, Version: "1.2.3", Instances: per, IdleTimeout: spec.Duration(10 * time.Minute)}
		s.Domains[name+".example.com"] = name
		s.Domains["www."+name+".example.com"] = name
		s.Status[name] = &registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted, Since: now - 60_000}
		s.Access[name] = map[string]*registry.Access{"r1": {LastMS: now - int64(a)*1000}}
		ins := map[string]*registry.Instance{}
		for i := range per {
			id := fmt.Sprint(i + 1)
			node := fmt.Sprintf("node-%03d", (a*per+i)%nodes)
			ins[id] = &registry.Instance{App: name, ID: id, Addr: fmt.Sprintf("10.0.0.1:%d", 20000+i), Node: node,
				Unit: fmt.Sprintf("%s@%s.service", name, id), Version: "1.2.3", State: registry.StateUp, Gen: 1}
		}
		s.Instances[name] = ins
		if a%10 == 0 {
			s.Rollouts[name] = &registry.Rollout{App: name, From: 1, To: 2, Strategy: registry.StrategyRolling, Phase: registry.PhaseRolling, Deadline: now + 60_000}
		}
	}
	return s
}

// benchServer is the API with the console mounted, over a static
// snapshot of 1,000 apps and 10,000 instances, asked from loopback
// (berth up's token-less reads).
func benchServer(b *testing.B) http.Handler {
	b.Helper()
	keys, _ := registry.NewKeys("")
	log, _ := test.NewNullLogger()
	src := staticSource{s: bigSnapshot(1000, 10, 100), synced: make(chan struct{})}
	close(src.synced)
	srv, err := api.New(api.Config{Keys: keys, OpenLocalReads: true}, nil, nil, src, nil, log)
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{Source: src, Authorize: srv.Authorize, Events: srv.Hub().Recent}, log)
	if err != nil {
		b.Fatal(err)
	}
	c.hist.observe(nil, src.s)
	c.Register(srv.Handle)
	return srv.Handler()
}

func benchGet(b *testing.B, h http.Handler, path string) {
	b.ReportAllocs()
	var size int
	for b.Loop() {
		r := httptest.NewRequest("GET", "http://127.0.0.1:9090"+path, nil)
		r.RemoteAddr = "127.0.0.1:40000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("GET %s: %d %s", path, w.Code, w.Body.String())
		}
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size)/1024, "KiB/page")
}

// BenchmarkConsoleRender renders the console's pages and, as the
// baseline, the JSON of GET /v1/apps for the same 1,000 apps.
func BenchmarkConsoleRender(b *testing.B) {
	h := benchServer(b)
	for _, c := range []struct{ name, path string }{
		{"v1-apps-json", "/v1/apps"},
		{"apps-page", "/"},
		{"app-page", "/apps/app-0500"},
		{"nodes-page", "/nodes"},
		{"rows-fragment-200", "/fragment/apps?" + rowsQuery(200)},
	} {
		b.Run(c.name, func(b *testing.B) { benchGet(b, h, c.path) })
	}
}

func rowsQuery(n int) string {
	q := ""
	for i := range n {
		if i > 0 {
			q += "&"
		}
		q += fmt.Sprintf("app=app-%04d", i*5)
	}
	return q
}
