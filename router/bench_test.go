package router

import (
	"fmt"
	"maps"
	"net/http"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/registry"

	"github.com/sirupsen/logrus/hooks/test"
)

// BenchmarkWakeOverhead measures what a wake adds to an app's own start:
// the time to the first response of a held request, minus the time the
// backend takes from its start to ready (100 ms here, played by a
// starter that registers the instance that long after the wake), p50/p99
// over 50 wakes.
func BenchmarkWakeOverhead(b *testing.B) {
	const ready = 100 * time.Millisecond
	for range b.N {
		e := newEnv(b, Config{})
		log, _ := test.NewNullLogger()
		NewWaker(e.r, e.cli, e.keys, log)
		srv, _ := backend(b, "woken")
		var overhead []time.Duration
		for i := range 50 {
			app := fmt.Sprintf("app%d", i)
			sleepingApp(b, e, app)
			starter(b, e, app, addr(srv), ready)
			req, _ := http.NewRequest("GET", e.srv.URL+"/", nil)
			req.Host = app + ".example.com"
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("wake %d: %v %v", i, resp, err)
			}
			resp.Body.Close()
			overhead = append(overhead, time.Since(start)-ready)
		}
		sort.Slice(overhead, func(i, j int) bool { return overhead[i] < overhead[j] })
		b.ReportMetric(float64(overhead[len(overhead)/2].Microseconds())/1000, "overhead-p50-ms")
		b.ReportMetric(float64(overhead[len(overhead)*99/100].Microseconds())/1000, "overhead-p99-ms")
	}
}

// BenchmarkRoutePropagation measures the time from the etcd Put of a new
// instance (of a new app, with its domain already known) to the first
// routed 200, p50/p99 over 100 trials; requests are sent back to back.
func BenchmarkRoutePropagation(b *testing.B) {
	for range b.N {
		e := newEnv(b, Config{})
		srv, _ := backend(b, "b")
		client := &http.Client{}
		var d []time.Duration
		for i := range 100 {
			app := fmt.Sprintf("p%d", i)
			key, _ := e.keys.Instance(app, "1")
			start := time.Now()
			if _, err := e.cli.Put(b.Context(), key, fmt.Sprintf(`{"addr":%q,"state":"up"}`, addr(srv))); err != nil {
				b.Fatal(err)
			}
			for {
				req, _ := http.NewRequest("GET", e.srv.URL+"/", nil)
				req.Host = app + ".example.com"
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			d = append(d, time.Since(start))
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "propagation-p50-ms")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, "propagation-p99-ms")
	}
}

// BenchmarkLookup10kDomains builds the routing table of 10,000 domains and
// 30,000 instances and measures Host lookups (exact, wildcard, by app
// name) and the table's memory.
func BenchmarkLookup10kDomains(b *testing.B) {
	snap := &registry.Snapshot{Domains: map[string]string{}, Instances: map[string]map[string]*registry.Instance{}}
	for i := range 10000 {
		app := fmt.Sprintf("app%d", i)
		snap.Domains[app+".example.com"] = app
		if i%10 == 0 {
			snap.Domains[fmt.Sprintf("*.t%d.example.org", i)] = app
		}
		snap.Instances[app] = map[string]*registry.Instance{}
		for j := range 3 {
			snap.Instances[app][fmt.Sprint(j)] = &registry.Instance{ID: fmt.Sprint(j), Addr: fmt.Sprintf("10.%d.%d.%d:8080", i/250%250, i%250, j), State: registry.StateUp}
		}
	}
	runtime.GC()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	builder := newTableBuilder(newMetrics())
	table := builder.build(snap)
	buildTime := time.Since(start)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(snap)
	hosts := []string{"app4711.example.com", "x.t4710.example.org", "app9999.anything.net", "nope.example.com"}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		table.lookup(hosts[i%len(hosts)])
	}
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "table-MiB")
	b.ReportMetric(float64(buildTime.Milliseconds()), "build-ms")
	// One app changes (as after an instance registration): the next
	// build reuses every other route.
	changed := *snap
	changed.Instances = maps.Clone(snap.Instances)
	changed.Instances["app7"] = map[string]*registry.Instance{"9": {ID: "9", Addr: "10.9.9.9:80", State: registry.StateUp}}
	start = time.Now()
	builder.build(&changed)
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "rebuild-one-ms")
	runtime.KeepAlive(table)
}
