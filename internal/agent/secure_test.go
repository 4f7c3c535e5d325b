package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

// TestAgentAsAgentRole: a node agent with the scheduler and deployer,
// connected over TLS as berth-agent, registers its node, stands for the
// scheduler's and the deployer's elections, registers an announced instance with its SkyDNS
// mirror on its lease, logs no denied request, and cannot claim a domain.
func TestAgentAsAgentRole(t *testing.T) {
	s, p := etcdtest.Secure(t)
	cli := etcdtest.SecureClient(t, s, p, etcdauth.Agent)
	k, _ := registry.NewKeys("")
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	dir := t.TempDir()
	a := &Agent{Cli: cli, Keys: k, Log: log, Cache: registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log),
		Cfg: Config{Node: "n1", IP: "127.0.0.1", Socket: filepath.Join(dir, "a.sock"), StateDir: dir, DBusAddress: "none", Scheduler: true}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case <-a.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("agent not ready as berth-agent")
	}
	has := func(key string, opts ...clientv3.OpOption) bool {
		r, err := cli.Get(ctx, key, opts...)
		return err == nil && len(r.Kvs) > 0
	}
	node, _ := k.Node("n1")
	eventually(t, "node record", func() bool { return has(node) })
	eventually(t, "scheduler candidate", func() bool { return has(k.FleetLeader(), clientv3.WithPrefix()) })
	eventually(t, "deployer candidate", func() bool { return has(k.DeployLeader(), clientv3.WithPrefix()) })

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go http.Serve(ln, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	rec := registry.Instance{Node: "n1", State: registry.StateUp}
	rec.SetPorts([]registry.NamedPort{{Name: "http", Addr: ln.Addr().String(), Proto: "tcp", Tags: []string{"http"}}})
	if err := a.Locals.Announce(ctx, Announcement{App: "shop", ID: "1", Record: rec, Health: "http:/", Interval: "50ms", SkyDNSZone: "berth"}); err != nil {
		t.Fatal(err)
	}
	inst, _ := k.Instance("shop", "1")
	eventually(t, "instance and its SkyDNS mirror", func() bool { return has(inst) && has("/skydns/berth/service/shop/1") })

	dom, _ := k.Domain("shop.example.com")
	if _, err := cli.Put(ctx, dom, `{"app":"shop"}`); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("put %s as berth-agent: %v, want permission denied", dom, err)
	}
	for _, e := range hook.AllEntries() {
		if err, _ := e.Data[logrus.ErrorKey].(error); errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("the agent was denied: %s: %v", e.Message, err)
		}
	}
}
