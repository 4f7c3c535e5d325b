package router

import (
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

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
