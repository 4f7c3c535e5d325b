package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/registry"
)

// BenchmarkEventsFanout: from an etcd put to the moment the last of n
// connected event-stream clients has the event (real etcd, real HTTP
// clients on loopback). The baseline is one client, in the same run.
func BenchmarkEventsFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			e := newEnv(b, nil)
			tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := make(chan struct{}, n)
			ready := make(chan struct{}, n)
			for range n {
				req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/events", nil)
				req.Header.Set("Authorization", "Bearer "+e.read)
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				go func() {
					defer res.Body.Close()
					ch := make(chan sseEvent, 64)
					go readSSE(res.Body, ch)
					for ev := range ch {
						switch {
						case ev.typ == evHello:
							ready <- struct{}{}
						case ev.typ == EvInstanceUp && strings.Contains(ev.data, `"app":"bench"`):
							got <- struct{}{}
						}
					}
				}()
			}
			for range n {
				<-ready
			}
			i := 0
			for b.Loop() {
				i++
				key, val, _ := registry.InstanceKV(e.keys, &registry.Instance{App: "bench", ID: fmt.Sprint(i), Addr: "127.0.0.1:80", State: registry.StateUp})
				if _, err := e.cli.Put(ctx, key, val); err != nil {
					b.Fatal(err)
				}
				for range n {
					<-got
				}
			}
			if w := e.watcher.open.Load(); w != 1 {
				b.Fatalf("%d watches open, want 1", w)
			}
		})
	}
}
