package registry

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
)

func percentile(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

// BenchmarkPutToNotify measures the time from an etcd Put to the cache's
// notification (p50/p99 over 1,000 changes), and the same for a bare etcd
// watch on the same server in the same run (the baseline).
func BenchmarkPutToNotify(b *testing.B) {
	_, cli := etcdtest.New(b)
	c := startCache(b, cli, nil)
	<-c.Synced()
	ch, cancel := c.Subscribe()
	defer cancel()
	raw := cli.Watch(context.Background(), "/berth/v1/", clientv3.WithPrefix())
	const n = 1000
	for range b.N {
		var viaCache, viaWatch []time.Duration
		for i := range n {
			key := instKey(b, "web", fmt.Sprint(i))
			val := fmt.Sprintf(`{"addr":"127.0.0.1:%d","state":"up"}`, 1000+i)
			start := time.Now()
			if _, err := cli.Put(context.Background(), key, val); err != nil {
				b.Fatal(err)
			}
			gotCache, gotWatch := false, false
			for !gotCache || !gotWatch {
				select {
				case <-ch:
					if c.Snapshot().Instances["web"][fmt.Sprint(i)] != nil && !gotCache {
						gotCache = true
						viaCache = append(viaCache, time.Since(start))
					}
				case <-raw:
					if !gotWatch {
						gotWatch = true
						viaWatch = append(viaWatch, time.Since(start))
					}
				}
			}
		}
		b.ReportMetric(float64(percentile(viaCache, 0.5).Microseconds()), "cache-p50-µs")
		b.ReportMetric(float64(percentile(viaCache, 0.99).Microseconds()), "cache-p99-µs")
		b.ReportMetric(float64(percentile(viaWatch, 0.5).Microseconds()), "watch-p50-µs")
		b.ReportMetric(float64(percentile(viaWatch, 0.99).Microseconds()), "watch-p99-µs")
	}
}

// BenchmarkInitialSync10k lists 10,000 instance records into a snapshot,
// against a bare paged Get of the same keys (baseline), and reports the
// memory the snapshot holds per record.
func BenchmarkInitialSync10k(b *testing.B) {
	_, cli := etcdtest.New(b)
	const n = 10000
	k := keys(b)
	var ops []clientv3.Op
	for i := range n {
		key, _ := k.Instance(fmt.Sprintf("app%d", i%100), fmt.Sprint(i))
		ops = append(ops, clientv3.OpPut(key, fmt.Sprintf(`{"addr":"10.0.%d.%d:%d","node":"node-%d","unit":"app@%d.service","tags":["http"],"version":"1.0.0","state":"up"}`, i/250, i%250, 20000+i%1000, i%3, i)))
		if len(ops) == 100 {
			if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
				b.Fatal(err)
			}
			ops = nil
		}
	}
	c := NewCache(cli, cli, CacheConfig{Keys: k}, nullLog())
	b.ResetTimer()
	var cacheTotal, rawTotal time.Duration
	for range b.N {
		start := time.Now()
		var rawBytes int
		for key := k.Prefix(); ; {
			r, err := cli.Get(context.Background(), key, clientv3.WithRange(clientv3.GetPrefixRangeEnd(k.Prefix())), clientv3.WithLimit(5000))
			if err != nil {
				b.Fatal(err)
			}
			for _, kv := range r.Kvs {
				rawBytes += len(kv.Value)
			}
			if !r.More {
				break
			}
			key = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
		}
		rawTotal += time.Since(start)

		start = time.Now()
		s, err := c.Load(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		cacheTotal += time.Since(start)
		count := 0
		for _, m := range s.Instances {
			count += len(m)
		}
		if count != n {
			b.Fatalf("got %d instances, want %d", count, n)
		}
		b.ReportMetric(float64(rawBytes)/n, "value-B/record")
	}
	b.ReportMetric(float64(cacheTotal.Milliseconds())/float64(b.N), "cache-sync-ms")
	b.ReportMetric(float64(rawTotal.Milliseconds())/float64(b.N), "raw-get-ms")
}

// BenchmarkSnapshotMemory reports the heap a snapshot of 10,000 instance
// records holds, per record, next to the size of the JSON values (the
// baseline); built without etcd so that no server allocation is counted.
func BenchmarkSnapshotMemory(b *testing.B) {
	const n = 10000
	k := keys(b)
	type kv struct{ k, v string }
	kvs := make([]kv, n)
	valueBytes := 0
	for i := range kvs {
		key, _ := k.Instance(fmt.Sprintf("app%d", i%100), fmt.Sprint(i))
		kvs[i] = kv{key, fmt.Sprintf(`{"addr":"10.0.%d.%d:%d","node":"node-%d","unit":"app@%d.service","tags":["http"],"version":"1.0.0","state":"up"}`, i/250, i%250, 20000+i%1000, i%3, i)}
		valueBytes += len(kvs[i].v)
	}
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		a := newApplier(k, emptySnapshot())
		for _, x := range kvs {
			if err := a.apply(x.k, []byte(x.v), false); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/record")
		b.ReportMetric(float64(valueBytes)/n, "value-B/record")
		runtime.KeepAlive(a)
	}
}
