package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

// countingWatcher is the real etcd watcher, counting the watches opened
// through it, those open now (a watch ends with its context) and the most
// ever open at once.
type countingWatcher struct {
	clientv3.Watcher
	n, open, peak atomic.Int32
}

func (w *countingWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	w.n.Add(1)
	now := w.open.Add(1)
	for p := w.peak.Load(); now > p && !w.peak.CompareAndSwap(p, now); p = w.peak.Load() {
	}
	go func() { <-ctx.Done(); w.open.Add(-1) }()
	return w.Watcher.Watch(ctx, key, opts...)
}

// env is an API server on a real etcd, served on loopback.
type env struct {
	t       testing.TB
	cli     *clientv3.Client
	keys    registry.Keys
	srv     *Server
	cache   *registry.Cache
	watcher *countingWatcher
	url     string
	admin   string // an admin token, named "test-admin"
	read    string // a read token, named "test-read"
}

func newEnv(t testing.TB, mut func(*Config)) *env {
	t.Helper()
	_, cli := etcdtest.New(t)
	return newEnvOn(t, cli, cli, cli, mut)
}

// newEnvOn serves an API writing through cli and reading through the
// watch cache of reader (a client of another etcd user, or cli itself);
// its tokens are created through tokens.
func newEnvOn(t testing.TB, cli, reader, tokens *clientv3.Client, mut func(*Config)) *env {
	t.Helper()
	keys, _ := registry.NewKeys("")
	log, _ := test.NewNullLogger()
	cw := &countingWatcher{Watcher: reader.Watcher}
	cache := registry.NewCache(reader, cw, registry.CacheConfig{Keys: keys}, log)
	cfg := Config{Keys: keys, TokenTTL: -1, DeleteWait: 2 * time.Second}
	if mut != nil {
		mut(&cfg)
	}
	srv, err := New(cfg, cli, cli, cache, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 3)
	go func() { cache.Run(ctx); done <- struct{}{} }()
	go func() { srv.Run(ctx); done <- struct{}{} }()
	go func() { srv.Serve(ctx, ln); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		for range 3 {
			<-done
		}
	})
	e := &env{t: t, cli: cli, keys: keys, srv: srv, cache: cache, watcher: cw, url: "http://" + ln.Addr().String()}
	e.admin = e.tokenVia(tokens, "test-admin", ScopeAdmin)
	e.read = e.tokenVia(tokens, "test-read", ScopeRead)
	select {
	case <-srv.Hub().Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("hub not ready")
	}
	// The hub has seen the token writes too: a stream opened now starts at
	// the store's revision.
	r, err := cli.Get(context.Background(), keys.Root()+"/v1/settle") // any read: its header has the revision
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); srv.Hub().Revision() < r.Header.Revision; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("hub at revision %d, etcd at %d", srv.Hub().Revision(), r.Header.Revision)
		}
	}
	return e
}

func (e *env) token(name, scope string) string {
	e.t.Helper()
	return e.tokenVia(e.cli, name, scope)
}

func (e *env) tokenVia(cli *clientv3.Client, name, scope string) string {
	e.t.Helper()
	tok, _, err := CreateToken(context.Background(), cli, e.keys, TokenOptions{Name: name, Scope: scope})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// resp is an answer as tests read it.
type resp struct {
	code int
	body []byte
	h    http.Header
}

// error returns the decoded error body.
func (r resp) error() Error {
	var e struct{ Error Error }
	json.Unmarshal(r.body, &e)
	return e.Error
}

func (e *env) do(method, path, token string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{code: res.StatusCode, body: b, h: res.Header}
}

// want fails unless r has status code.
func (r resp) want(t *testing.T, code int, what string) resp {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: got status %d, want %d; body %s", what, r.code, code, r.body)
	}
	return r
}

// until polls f every 10ms for up to 5s.
func until(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sseEvent is one event read from a stream.
type sseEvent struct {
	typ, id string
	data    string
}

// stream is an open event stream.
type stream struct {
	res *http.Response
	ch  chan sseEvent
}

func (e *env) stream(token string, header map[string]string) *stream {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+"/v1/events", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		e.t.Fatalf("events: status %d: %s", res.StatusCode, b)
	}
	s := &stream{res: res, ch: make(chan sseEvent, 10000)}
	e.t.Cleanup(func() { res.Body.Close() })
	go readSSE(res.Body, s.ch)
	return s
}

// readSSE parses an event stream into ch until it ends; ch is closed then.
func readSSE(r io.Reader, ch chan<- sseEvent) {
	defer close(ch)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.typ != "" || ev.data != "" {
				ch <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.typ = line[7:]
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		}
	}
}

// next returns the next event of a type in types (others skipped).
func (s *stream) next(t *testing.T, types ...string) sseEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-s.ch:
			if !ok {
				t.Fatalf("stream ended waiting for %v", types)
			}
			for _, typ := range types {
				if ev.typ == typ {
					return ev
				}
			}
		case <-timeout:
			t.Fatalf("no %v event within 5s", types)
		}
	}
}

func clientWithPrefix() clientv3.OpOption { return clientv3.WithPrefix() }
