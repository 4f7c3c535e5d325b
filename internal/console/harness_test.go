package console

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/api"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// env is the API with the console mounted, on a real etcd, on loopback.
type env struct {
	t     testing.TB
	cli   *clientv3.Client
	keys  registry.Keys
	url   string
	admin string
	read  string
	con   *Console
}

func newEnv(t testing.TB, localReads bool) *env {
	t.Helper()
	_, cli := etcdtest.New(t)
	keys, _ := registry.NewKeys("")
	log, _ := test.NewNullLogger()
	cache := registry.NewCache(cli, cli, registry.CacheConfig{Keys: keys}, log)
	srv, err := api.New(api.Config{Keys: keys, OpenLocalReads: localReads, TokenTTL: -1, DeleteWait: 2 * time.Second}, cli, cli, cache, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	con, err := FromAPI(srv, cli, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 4)
	for _, run := range []func(context.Context) error{cache.Run, srv.Run, con.Run, func(ctx context.Context) error { return srv.Serve(ctx, ln) }} {
		go func() { run(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for range 4 {
			<-done
		}
	})
	e := &env{t: t, cli: cli, keys: keys, url: "http://" + ln.Addr().String(), con: con}
	for _, tk := range []struct {
		name, scope string
		dst         *string
	}{{"test-admin", api.ScopeAdmin, &e.admin}, {"test-read", api.ScopeRead, &e.read}} {
		tok, _, err := api.CreateToken(ctx, cli, keys, api.TokenOptions{Name: tk.name, Scope: tk.scope})
		if err != nil {
			t.Fatal(err)
		}
		*tk.dst = tok
	}
	select {
	case <-srv.Hub().Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("hub not ready")
	}
	return e
}

// put writes a record as JSON (or a string as is).
func (e *env) put(key string, v any) {
	e.t.Helper()
	b, ok := v.(string)
	if !ok {
		j, err := json.Marshal(v)
		if err != nil {
			e.t.Fatal(err)
		}
		b = string(j)
	}
	if _, err := e.cli.Put(context.Background(), key, b); err != nil {
		e.t.Fatal(err)
	}
}

// key returns a key builder's key, failing the test on its error.
func (e *env) key(key string, err error) string {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
	return key
}

// seed writes an app "shop" (2 instances wanted, one up, one starting) on
// node n1, with a domain and a status record.
func (e *env) seed() {
	t := e.t
	t.Helper()
	apps, err := spec.Parse([]byte("apiVersion: berth/v1\nname: shop\nversion: 1.2.0\nruntime: exec\ncommand: [/bin/true]\n" +
		"instances: 2\nidleTimeout: 10m\nports:\n  - container: 8080\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.PublishApp(context.Background(), e.cli, e.keys, apps[0]); err != nil {
		t.Fatal(err)
	}
	e.put(e.key(e.keys.Domain("shop.example.com")), registry.Domain{App: "shop"})
	e.put(e.key(e.keys.Node("n1")), registry.Node{Addr: "127.0.0.1", Metadata: map[string]string{"role": "worker"}})
	e.put(e.key(e.keys.Instance("shop", "1")), registry.Instance{Addr: "127.0.0.1:4001", Node: "n1", Unit: "shop@1.service", Version: "1.2.0", State: registry.StateUp})
	e.put(e.key(e.keys.Instance("shop", "2")), registry.Instance{Addr: "127.0.0.1:4002", Node: "n1", Unit: "shop@2.service", Version: "1.2.0", State: registry.StateStarting})
	e.put(e.key(e.keys.Status("shop")), registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted,
		Since: time.Now().UnixMilli(), Units: map[string][]string{"n1": {"shop@1.service", "shop@2.service"}}})
	e.put(e.key(e.keys.Access("shop", "r1")), registry.Access{LastMS: time.Now().UnixMilli()})
}

// get fetches a path with an optional bearer token.
func (e *env) get(path, token string) (int, http.Header, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// until polls f every 10ms for up to 5s.
// served waits until the console serves path (read with token, "" for
// none) with want in it: pages come from the API's watch cache, which
// follows etcd a moment after a write, and a page asked for before it
// has an app says the app is unknown.
func (e *env) served(path, token, want string) {
	e.t.Helper()
	until(e.t, path+" with "+want, func() bool {
		code, _, b := e.get(path, token)
		return code == http.StatusOK && strings.Contains(b, want)
	})
}

func until(t testing.TB, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
