package agent

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

// TestLocalsHealthGating announces an instance over the agent's socket and
// checks that it is registered only while its health check passes, can be
// drained and withdrawn, and is restored by a restarted agent.
// localsEnv is a node lease on a real etcd and an instance whose health
// check passes while healthy is set.
type localsEnv struct {
	ctx     context.Context
	cli     *clientv3.Client
	k       registry.Keys
	log     logrus.FieldLogger
	owner   *registry.LeaseOwner
	addr    string // the instance's address
	healthy *atomic.Bool
}

func newLocalsEnv(t *testing.T) *localsEnv {
	t.Helper()
	_, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	log, _ := test.NewNullLogger()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	owner := registry.NewLeaseOwner(cli, cli, 5*time.Second, log)
	go owner.Run(ctx)
	e := &localsEnv{ctx: ctx, cli: cli, k: k, log: log, owner: owner, healthy: &atomic.Bool{}}
	e.healthy.Store(true)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	t.Cleanup(func() { ln.Close() })
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !e.healthy.Load() {
			w.WriteHeader(500)
		}
	}))
	e.addr = ln.Addr().String()
	return e
}

func TestLocalsHealthGating(t *testing.T) {
	e := newLocalsEnv(t)
	ctx, cli, k, log, owner, healthy := e.ctx, e.cli, e.k, e.log, e.owner, e.healthy
	cache := registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log)
	go cache.Run(ctx)
	state := t.TempDir()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l := &Locals{Reg: owner, Keys: k, StateDir: state, Log: log}
	lctx, stopLocals := context.WithCancel(ctx)
	go l.Run(lctx)
	go l.ServeSocket(lctx, sock)
	c := Client{Socket: sock}
	eventually(t, "the socket", c.Available)

	ann := Announcement{App: "web", ID: "1", Record: registry.Instance{Addr: e.addr, Node: "n1"}, Health: "http:/health", Interval: "50ms"}
	if err := c.Announce(ctx, ann); err != nil {
		t.Fatal(err)
	}
	state1 := func(want string) func() bool {
		return func() bool {
			in := cache.Snapshot().Instances["web"]["1"]
			return (want == "" && in == nil) || (in != nil && in.State == want)
		}
	}
	eventually(t, "registered", state1(registry.StateUp))
	healthy.Store(false)
	eventually(t, "deregistered while unhealthy", state1(""))
	healthy.Store(true)
	eventually(t, "registered again once healthy", state1(registry.StateUp))
	if err := c.Drain(ctx, "web", "1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "draining", state1(registry.StateDraining))

	// The agent dies and its lease expires; a new agent restores what the
	// old one was told.
	stopLocals()
	key, _ := k.Instance("web", "1")
	owner.Delete(ctx, key)
	eventually(t, "gone with the old agent's lease", state1(""))
	l2 := &Locals{Reg: owner, Keys: k, StateDir: state, Log: log}
	go l2.Run(ctx)
	eventually(t, "restored by the new agent", state1(registry.StateUp))
	if err := l2.Withdraw(ctx, "web", "1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "withdrawn", state1(""))

	bad := Announcement{App: "Bad Name", ID: "1", Record: registry.Instance{Addr: "127.0.0.1:1"}}
	if err := c.Announce(ctx, bad); err == nil {
		t.Fatal("a bad announcement was accepted")
	}
}

func TestAgentWithoutBusOrEngineStillRuns(t *testing.T) {
	_, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	dir := t.TempDir()
	a := &Agent{Cli: cli, Keys: k, Log: log, Cache: registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log),
		Cfg: Config{Node: "n1", IP: "127.0.0.1", Socket: filepath.Join(dir, "a.sock"), StateDir: dir,
			DockerSocket: filepath.Join(dir, "no-docker.sock"), DBusAddress: "unix:path=" + filepath.Join(dir, "no-bus")}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	select {
	case <-a.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("agent not ready without a bus and an engine")
	}
	eventually(t, "warnings about the missing bus and engine", func() bool {
		bus, engine := false, false
		for _, e := range hook.AllEntries() {
			bus = bus || e.Message == "systemd bus unavailable; retrying in 5s"
			engine = engine || e.Message == "docker engine unavailable"
		}
		return bus && engine
	})
	cancel()
	<-done
}

// TestLocalsKeepPortsAndMirror: an instance announced with several ports
// and a SkyDNS zone is registered by the agent with every port and mirrored
// on the node lease, the mirror following the record through a failed
// health check, a restart of the agent and the withdrawal.
func TestLocalsKeepPortsAndMirror(t *testing.T) {
	e := newLocalsEnv(t)
	ctx, cli, k, log, owner, healthy := e.ctx, e.cli, e.k, e.log, e.owner, e.healthy
	<-owner.Ready()
	rec := registry.Instance{Node: "n1", State: registry.StateUp}
	rec.SetPorts([]registry.NamedPort{
		{Name: "http", Addr: e.addr, Proto: "tcp", Tags: []string{"http"}},
		{Name: "metrics", Addr: "127.0.0.1:9", Proto: "tcp", Tags: []string{"prometheus"}},
	})
	state := t.TempDir()
	l := &Locals{Reg: owner, Keys: k, StateDir: state, Log: log}
	lctx, stopLocals := context.WithCancel(ctx)
	go l.Run(lctx)
	ann := Announcement{App: "shop-api", ID: "1", Record: rec, Health: "http:/", Interval: "50ms", SkyDNSZone: "berth"}
	if err := l.Announce(ctx, ann); err != nil {
		t.Fatal(err)
	}
	key, _ := k.Instance("shop-api", "1")
	sky := "/skydns/berth/service/shop-api/"
	mirror := []string{sky + "1", sky + "_tcp/_http/1", sky + "_tcp/_metrics/1"}
	// registered reports whether the record (with both ports) and every
	// mirror key are there, on the node lease.
	registered := func() bool {
		r, _ := cli.Get(ctx, key)
		if len(r.Kvs) != 1 || r.Kvs[0].Lease != int64(owner.ID()) {
			return false
		}
		var in registry.Instance
		if json.Unmarshal(r.Kvs[0].Value, &in) != nil || len(in.Ports) != 2 || in.Ports["metrics"].Addr != "127.0.0.1:9" {
			t.Fatalf("record %s: want both ports", r.Kvs[0].Value)
		}
		for _, mk := range mirror {
			r, _ := cli.Get(ctx, mk)
			if len(r.Kvs) != 1 || r.Kvs[0].Lease != int64(owner.ID()) {
				return false
			}
		}
		return true
	}
	gone := func() bool {
		r, _ := cli.Get(ctx, "/skydns/", clientv3.WithPrefix())
		in, _ := cli.Get(ctx, key)
		return len(r.Kvs) == 0 && len(in.Kvs) == 0
	}
	eventually(t, "record and mirror on the node lease", registered)
	healthy.Store(false)
	eventually(t, "record and mirror gone while unhealthy", gone)
	healthy.Store(true)
	eventually(t, "record and mirror back once healthy", registered)

	// A new agent restores the announcement, mirror included.
	stopLocals()
	l.mu.Lock()
	old := l.instances[key]
	l.mu.Unlock()
	if err := l.deregister(ctx, old); err != nil {
		t.Fatal(err)
	}
	eventually(t, "gone with the old agent", gone)
	l2 := &Locals{Reg: owner, Keys: k, StateDir: state, Log: log}
	go l2.Run(ctx)
	eventually(t, "restored with every port and the mirror", registered)
	if err := l2.Withdraw(ctx, "shop-api", "1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "withdrawn with the mirror", gone)
}
