package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdserver"
	"github.com/berthproject/berth/internal/etcdtest"
)

func nullLog() logrus.FieldLogger { l, _ := test.NewNullLogger(); return l }

func keys(t testing.TB) Keys {
	t.Helper()
	k, err := NewKeys("/berth")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func startCache(t testing.TB, cli *clientv3.Client, w clientv3.Watcher) *Cache {
	t.Helper()
	if w == nil {
		w = cli
	}
	c := NewCache(cli, w, CacheConfig{Keys: keys(t), MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}, nullLog())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// waitFor polls the cache's snapshot until cond holds or 10s pass.
func waitFor(t *testing.T, c *Cache, what string, cond func(*Snapshot) bool) {
	t.Helper()
	ch, cancel := c.Subscribe()
	defer cancel()
	deadline := time.After(10 * time.Second)
	for !cond(c.Snapshot()) {
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func put(t testing.TB, kv clientv3.KV, key string, v any) {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		b, _ = json.Marshal(v)
	}
	if _, err := kv.Put(context.Background(), key, string(b)); err != nil {
		t.Fatal(err)
	}
}

func instKey(t testing.TB, app, id string) string {
	t.Helper()
	k, err := keys(t).Instance(app, id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func up(addr string) Instance { return Instance{Addr: addr, State: StateUp} }

func TestCacheListThenWatch(t *testing.T) {
	_, cli := etcdtest.New(t)
	put(t, cli, instKey(t, "web", "1"), up("127.0.0.1:8001"))
	put(t, cli, "/berth/v1/domains/web.example.com", Domain{App: "web"})
	c := startCache(t, cli, nil)
	<-c.Synced()
	s := c.Snapshot()
	if len(s.Live("web")) != 1 || s.Domains["web.example.com"] != "web" {
		t.Fatalf("after list: got %+v", s)
	}
	put(t, cli, instKey(t, "web", "2"), up("127.0.0.1:8002"))
	waitFor(t, c, "second instance", func(s *Snapshot) bool { return len(s.Live("web")) == 2 })
	cli.Delete(context.Background(), instKey(t, "web", "1"))
	waitFor(t, c, "deletion", func(s *Snapshot) bool { return len(s.Live("web")) == 1 && s.Live("web")[0].ID == "2" })
	if c.Revision() == 0 || c.Staleness() != 0 {
		t.Errorf("revision %d, staleness %s: want a revision and a running watch", c.Revision(), c.Staleness())
	}
}

func TestUndecodableValuesAreSkipped(t *testing.T) {
	_, cli := etcdtest.New(t)
	put(t, cli, instKey(t, "web", "bad"), []byte("{not json"))
	put(t, cli, instKey(t, "web", "noaddr"), Instance{State: StateUp})
	put(t, cli, "/berth/v1/whatever/x", []byte("ignored: outside the schema"))
	c := startCache(t, cli, nil)
	<-c.Synced()
	put(t, cli, instKey(t, "web", "1"), up("127.0.0.1:8001"))
	put(t, cli, instKey(t, "web", "1b"), []byte("garbage"))
	put(t, cli, instKey(t, "web", "2"), up("127.0.0.1:8002"))
	waitFor(t, c, "good records despite bad ones", func(s *Snapshot) bool { return len(s.Live("web")) == 2 })
	// A good record turned bad leaves the view.
	put(t, cli, instKey(t, "web", "2"), []byte("{"))
	waitFor(t, c, "bad update removes the record", func(s *Snapshot) bool { return len(s.Live("web")) == 1 })
}

// gatedWatcher holds the cache's Watch calls until released, so that the
// test can write and compact while the cache is behind.
type gatedWatcher struct {
	clientv3.Watcher
	gate  chan struct{}
	calls chan int64
}

func (g *gatedWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	op := clientv3.OpGet(key, opts...)
	g.calls <- op.Rev()
	<-g.gate
	return g.Watcher.Watch(ctx, key, opts...)
}

func TestCompactionWhileBehindRelists(t *testing.T) {
	_, cli := etcdtest.New(t)
	put(t, cli, instKey(t, "web", "1"), up("127.0.0.1:8001"))
	gw := &gatedWatcher{Watcher: cli, gate: make(chan struct{}), calls: make(chan int64, 10)}
	c := startCache(t, cli, gw)
	<-c.Synced()
	from := <-gw.calls // the cache wants events from here
	put(t, cli, instKey(t, "web", "2"), up("127.0.0.1:8002"))
	resp, _ := cli.Put(context.Background(), instKey(t, "web", "3"), `{"addr":"127.0.0.1:8003","state":"up"}`)
	if _, err := cli.Compact(context.Background(), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	close(gw.gate)
	waitFor(t, c, "relist after compaction", func(s *Snapshot) bool { return len(s.Live("web")) == 3 })
	second := <-gw.calls
	if second <= from {
		t.Errorf("second watch from %d, want after the relist (> %d)", second, from)
	}
}

func TestEtcdRestartResyncs(t *testing.T) {
	dir := t.TempDir()
	srv, err := etcdserver.Start(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	port := srv.Etcd.Clients[0].Addr().(interface{ String() string }).String()
	cli := etcdtest.Client(t, srv.Endpoint)
	put(t, cli, instKey(t, "web", "1"), up("127.0.0.1:8001"))
	c := startCache(t, cli, nil)
	waitFor(t, c, "first sync", func(s *Snapshot) bool { return len(s.Live("web")) == 1 })
	srv.Close()
	time.Sleep(300 * time.Millisecond)
	if c.Staleness() == 0 {
		t.Error("staleness is 0 while etcd is down")
	}
	if len(c.Snapshot().Live("web")) != 1 {
		t.Error("the last snapshot is not served while etcd is down")
	}
	var p int
	fmt.Sscanf(port[len("127.0.0.1:"):], "%d", &p)
	srv2, err := etcdserver.Start(dir, p)
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	put(t, cli, instKey(t, "web", "2"), up("127.0.0.1:8002"))
	waitFor(t, c, "resync after restart", func(s *Snapshot) bool { return len(s.Live("web")) == 2 })
	waitFor(t, c, "watch running again", func(*Snapshot) bool { return c.Staleness() == 0 })
}

func TestNewerSchemaRefused(t *testing.T) {
	_, cli := etcdtest.New(t)
	put(t, cli, "/berth/schema", []byte("2.0.0"))
	if err := EnsureSchema(context.Background(), cli, keys(t)); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("got %v, want ErrSchemaTooNew", err)
	}
	c := NewCache(cli, cli, CacheConfig{Keys: keys(t)}, nullLog())
	if _, err := c.list(context.Background()); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("cache list: got %v, want ErrSchemaTooNew", err)
	}
}

func TestLeaseOwnerRecoversLostLease(t *testing.T) {
	_, cli := etcdtest.New(t)
	o := NewLeaseOwner(cli, cli, 2*time.Second, nullLog())
	ctx, cancel := context.WithCancel(context.Background())
	go o.Run(ctx)
	key := instKey(t, "web", "1")
	if err := o.Put(ctx, key, `{"addr":"127.0.0.1:1","state":"up"}`); err != nil {
		t.Fatal(err)
	}
	<-o.Ready()
	first := o.ID()
	if _, err := cli.Revoke(context.Background(), first); err != nil { // as if etcd forgot it
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _ := cli.Get(context.Background(), key)
		if len(r.Kvs) == 1 && clientv3.LeaseID(r.Kvs[0].Lease) != first && r.Kvs[0].Lease != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("key not re-written on a new lease")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-o.Done()
	if r, _ := cli.Get(context.Background(), key); len(r.Kvs) != 0 {
		t.Fatal("key survives Close: the lease was not revoked")
	}
}

func TestTransitionOneWinner(t *testing.T) {
	_, cli := etcdtest.New(t)
	k := keys(t)
	if _, err := Transition(context.Background(), cli, k, "web", 0, Status{Current: StatusPassivated, Expected: StatusPassivated}); err != nil {
		t.Fatal(err)
	}
	_, rev, _ := GetStatus(context.Background(), cli, k, "web")
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Transition(context.Background(), cli, k, "web", rev, Status{Current: StatusStarting, Expected: StatusStarted})
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("got %d winners, want exactly 1", wins)
	}
}

func TestKeysHostile(t *testing.T) {
	k := keys(t)
	for _, app := range []string{"", "Web", "a/b", "../x", "a b", "-x", "x-"} {
		if _, err := k.Instance(app, "1"); !errors.Is(err, ErrBadName) {
			t.Errorf("Instance(%q): got %v, want ErrBadName", app, err)
		}
	}
	for _, id := range []string{"1", "a/b", "../..", "%2F", "é ü", "x\x00y"} {
		key, err := k.Instance("web", id)
		if err != nil {
			t.Fatalf("Instance(web, %q): %v", id, err)
		}
		pk := k.Parse(key)
		if pk.Kind != KindInstance || pk.App != "web" || pk.Name != id {
			t.Errorf("Parse(%q) = %+v, want instance web/%q", key, pk, id)
		}
	}
	if pk := k.Parse("/berth/v1/instances/web/a/b"); pk.Kind != KindUnknown {
		t.Errorf("a key with an extra level parsed as %+v", pk)
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"/berth/v1/instances/web/1", "/berth/v1/domains/*.x.com", "/berth/v1/access/a/r%2F1", "/berth/v1/nodes/"} {
		f.Add(s)
	}
	k, _ := NewKeys("/berth")
	f.Fuzz(func(t *testing.T, key string) {
		pk := k.Parse(key)
		if pk.Kind == KindInstance {
			back, err := k.Instance(pk.App, pk.Name)
			if err != nil {
				t.Fatalf("parsed %q as %+v, which does not build: %v", key, pk, err)
			}
			if k.Parse(back) != pk {
				t.Fatalf("round trip of %q: %q", key, back)
			}
		}
	})
}

func TestLeaderLossWatchContinues(t *testing.T) {
	cl, err := etcdtest.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cli := etcdtest.Client(t, cl.Endpoints...)
	put(t, cli, instKey(t, "web", "1"), up("127.0.0.1:8001"))
	c := startCache(t, cli, nil)
	waitFor(t, c, "first sync", func(s *Snapshot) bool { return len(s.Live("web")) == 1 })
	leader := -1
	for leader < 0 {
		leader = cl.Leader()
	}
	cl.Stop(leader)
	// Writes go on through the remaining quorum; the cache must see them.
	for i := 2; i <= 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cli.Put(ctx, instKey(t, "web", fmt.Sprint(i)), `{"addr":"127.0.0.1:9000","state":"up"}`)
		cancel()
		if err != nil {
			t.Fatalf("put %d after leader loss: %v", i, err)
		}
	}
	waitFor(t, c, "every write after the leader loss", func(s *Snapshot) bool { return len(s.Live("web")) == 20 })
}

// TestDeletesSpareAMovedInstance: when an instance was moved and its new
// copy registered (another node, another lease), the stop of the old copy
// does not delete the new record, through the owner of the old lease or
// through the hook's direct delete; its own records it deletes.
func TestDeletesSpareAMovedInstance(t *testing.T) {
	_, cli := etcdtest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	old := NewLeaseOwner(cli, cli, 5*time.Second, nullLog())
	go old.Run(ctx)
	key := instKey(t, "web", "2")
	if err := old.Put(ctx, key, `{"addr":"10.0.0.2:1","node":"n2","state":"up"}`); err != nil {
		t.Fatal(err)
	}
	<-old.Ready()
	// The new copy on n3, on another lease.
	lease, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	newer := `{"addr":"10.0.0.3:1","node":"n3","state":"up"}`
	cli.Put(ctx, key, newer, clientv3.WithLease(lease.ID))
	if err := old.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := DeleteInstanceOf(ctx, cli, key, "n2"); err != nil {
		t.Fatal(err)
	}
	if r, _ := cli.Get(ctx, key); len(r.Kvs) != 1 || string(r.Kvs[0].Value) != newer {
		t.Fatalf("the new copy's record: %v, want it kept", r.Kvs)
	}
	// Its own record n3 deletes.
	if err := DeleteInstanceOf(ctx, cli, key, "n3"); err != nil {
		t.Fatal(err)
	}
	if r, _ := cli.Get(ctx, key); len(r.Kvs) != 0 {
		t.Fatalf("n3's own delete left %v", r.Kvs)
	}
	// And an owner deletes what is on its own lease.
	other := instKey(t, "web", "3")
	old.Put(ctx, other, `{"addr":"10.0.0.2:2","node":"n2","state":"up"}`)
	old.Delete(ctx, other)
	if r, _ := cli.Get(ctx, other); len(r.Kvs) != 0 {
		t.Fatalf("the owner's own delete left %v", r.Kvs)
	}
}

// TestLeaseOwnerKeepsOthersRecords: after its lease was lost, an owner
// writes its keys again, except those someone else wrote meanwhile (the
// same instance started on another node): their record stays.
func TestLeaseOwnerKeepsOthersRecords(t *testing.T) {
	_, cli := etcdtest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := NewLeaseOwner(cli, cli, 2*time.Second, nullLog())
	go o.Run(ctx)
	mine, moved := instKey(t, "web", "1"), instKey(t, "web", "2")
	o.Put(ctx, mine, `{"addr":"10.0.0.2:1","node":"n2","state":"up"}`)
	o.Put(ctx, moved, `{"addr":"10.0.0.2:2","node":"n2","state":"up"}`)
	<-o.Ready()
	first := o.ID()
	// Cut off: the lease expires, the instance starts on n3.
	cli.Revoke(ctx, first)
	newer := `{"addr":"10.0.0.3:2","node":"n3","state":"up"}`
	cli.Put(ctx, moved, newer)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _ := cli.Get(ctx, mine)
		if len(r.Kvs) == 1 && clientv3.LeaseID(r.Kvs[0].Lease) != first && r.Kvs[0].Lease != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the owner's own key was not written again on its new lease")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r, _ := cli.Get(ctx, moved); len(r.Kvs) != 1 || string(r.Kvs[0].Value) != newer {
		t.Fatalf("the record written by another node meanwhile: %v, want it kept", r.Kvs)
	}
	// The old copy's drain (an update of a key it wrote) leaves it too.
	o.Put(ctx, moved, `{"addr":"10.0.0.2:2","node":"n2","state":"draining"}`)
	if r, _ := cli.Get(ctx, moved); len(r.Kvs) != 1 || string(r.Kvs[0].Value) != newer {
		t.Fatalf("after the old copy's drain: %v, want the new copy's record", r.Kvs)
	}
	// And the stop of the old copy leaves it too.
	o.Delete(ctx, moved)
	if r, _ := cli.Get(ctx, moved); len(r.Kvs) != 1 {
		t.Fatal("the old copy's stop deleted the new copy's record")
	}
}
