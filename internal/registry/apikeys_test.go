package registry

import (
	"context"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
)

// recordingKV records the keys its Gets return.
type recordingKV struct {
	clientv3.KV
	mu   sync.Mutex
	keys []string
}

func (r *recordingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := r.KV.Get(ctx, key, opts...)
	if err == nil {
		r.mu.Lock()
		for _, kv := range resp.Kvs {
			r.keys = append(r.keys, string(kv.Key))
		}
		r.mu.Unlock()
	}
	return resp, err
}

// TestCacheListSkipsAuditLog: a list reads the records before and after
// the audit log's range, and nothing of the log itself.
func TestCacheListSkipsAuditLog(t *testing.T) {
	_, cli := etcdtest.New(t)
	k := keys(t)
	put(t, cli, "/berth/v1/apps/web", map[string]any{"name": "web", "version": "1.0.0"}) // before audit/
	put(t, cli, instKey(t, "web", "1"), up("127.0.0.1:8001"))                            // after audit/
	for i := range 50 {
		key, err := k.Audit(int64(i), "r1", i)
		if err != nil {
			t.Fatal(err)
		}
		cli.Put(context.Background(), key, `{"who":"x"}`)
	}
	rec := &recordingKV{KV: cli}
	c := NewCache(rec, cli, CacheConfig{Keys: k, PageSize: 7}, nullLog())
	s, err := c.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Apps["web"] == nil || len(s.Live("web")) != 1 {
		t.Fatalf("listed view lacks the app or its instance: %+v", s)
	}
	for _, key := range rec.keys {
		if strings.HasPrefix(key, k.AuditPrefix()) {
			t.Fatalf("the list read the audit record %s", key)
		}
	}
}
