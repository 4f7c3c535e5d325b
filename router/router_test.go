package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus/hooks/test"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/seal"
)

// env is a router on a real etcd, fed by the real watch cache.
type env struct {
	t     testing.TB
	cli   *clientv3.Client // the test's writes
	rcli  *clientv3.Client // the router's: its cache and access records
	keys  registry.Keys
	cache *registry.Cache
	r     *Router
	srv   *front
}

// front is the router served the way berth serves it: the fast lane on a
// plain listener, net/http behind it.
type front struct {
	URL string
	s   *Server
}

func serveFront(t testing.TB, r *Router) *front {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(r, nil)
	go s.Serve(l)
	return &front{URL: "http://" + l.Addr().String(), s: s}
}

func (f *front) Close() { f.s.Close() }

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	_, cli := etcdtest.New(t)
	return newEnvOn(t, cfg, cli, cli)
}

// newEnvOn is newEnv with the test writing through cli and the router
// reading and writing its access records through rcli.
func newEnvOn(t testing.TB, cfg Config, cli, rcli *clientv3.Client) *env {
	t.Helper()
	k, _ := registry.NewKeys("")
	log, _ := test.NewNullLogger()
	cache := registry.NewCache(rcli, rcli, registry.CacheConfig{Keys: k}, log)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); cache.Run(ctx) }()
	r, err := New(cfg, cache, log)
	if err != nil {
		t.Fatal(err)
	}
	go func() { defer wg.Done(); r.Run(ctx) }()
	srv := serveFront(t, r)
	t.Cleanup(func() { srv.Close(); cancel(); wg.Wait() })
	e := &env{t: t, cli: cli, rcli: rcli, keys: k, cache: cache, r: r, srv: srv}
	e.waitRev(0)
	return e
}

// waitRev waits until the router's table reflects etcd revision rev.
func (e *env) waitRev(rev int64) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !e.r.Ready() || e.r.table.Load().Rev < rev {
		if time.Now().After(deadline) {
			e.t.Fatalf("router table not at revision %d", rev)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (e *env) put(key string, v any) {
	e.t.Helper()
	b, _ := json.Marshal(v)
	resp, err := e.cli.Put(context.Background(), key, string(b))
	if err != nil {
		e.t.Fatal(err)
	}
	e.waitRev(resp.Header.Revision)
}

func (e *env) domain(host, app string) {
	k, _ := e.keys.Domain(host)
	e.put(k, registry.Domain{App: app})
}

func (e *env) instance(app, id, addr string) {
	k, _ := e.keys.Instance(app, id)
	e.put(k, registry.Instance{Addr: addr, State: registry.StateUp})
}

func (e *env) status(app string, st registry.Status) {
	k, _ := e.keys.Status(app)
	e.put(k, st)
}

// backend starts an HTTP server that answers with its name.
func backend(t testing.TB, name string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %s xff=%s real=%s proto=%s host=%s", name, r.URL.Path, r.Header.Get("X-Forwarded-For"),
			r.Header.Get("X-Real-IP"), r.Header.Get("X-Forwarded-Proto"), r.Host)
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

func addr(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func (e *env) get(host, path string, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestHostMatching(t *testing.T) {
	e := newEnv(t, Config{})
	a, _ := backend(t, "exact")
	b, _ := backend(t, "wild")
	c, _ := backend(t, "byname")
	e.instance("shop", "1", addr(a))
	e.instance("tenant", "1", addr(b))
	e.instance("paas-monitor", "1", addr(c))
	e.domain("shop.example.com", "shop")
	e.domain("*.tenants.example.com", "tenant")
	cases := []struct{ host, want string }{
		{"shop.example.com", "exact"},
		{"SHOP.Example.COM:8080", "exact"},
		{"shop.example.com.", "exact"},
		{"a.tenants.example.com", "wild"},
		{"x.y.tenants.example.com", "wild"},
		{"paas-monitor.anything.io", "byname"},
		{"paas-monitor", "byname"},
	}
	for _, c := range cases {
		resp, body := e.get(c.host, "/")
		if resp.StatusCode != 200 || !strings.HasPrefix(body, c.want+" ") {
			t.Errorf("Host %q: got %d %q, want %s", c.host, resp.StatusCode, body, c.want)
		}
	}
	for _, host := range []string{"tenants.example.com", "unknown.example.com", "example.com"} {
		resp, body := e.get(host, "/", "Accept", "text/html")
		if resp.StatusCode != 404 || !strings.Contains(body, "<html") {
			t.Errorf("Host %q: got %d %q, want the 404 page", host, resp.StatusCode, body)
		}
	}
	resp, body := e.get("nope.example.com", "/", "Accept", "application/json")
	if resp.StatusCode != 404 || !strings.Contains(body, `"status":404`) {
		t.Errorf("JSON 404: got %d %q", resp.StatusCode, body)
	}
}

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	e := newEnv(t, Config{})
	counts := map[string]int{}
	for i := range 3 {
		s, _ := backend(t, fmt.Sprint("b", i))
		e.instance("web", fmt.Sprint(i), addr(s))
	}
	for range 30 {
		_, body := e.get("web.local", "/")
		counts[strings.Fields(body)[0]]++
	}
	for name, n := range counts {
		if n != 10 {
			t.Errorf("%s got %d of 30 requests, want 10 (%v)", name, n, counts)
		}
	}
}

func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func TestRetryOnDialErrorAndPassiveDown(t *testing.T) {
	e := newEnv(t, Config{FailWindow: time.Minute})
	good, hits := backend(t, "good")
	dead := deadAddr(t)
	e.instance("web", "1", dead)
	e.instance("web", "2", addr(good))
	for i := range 20 {
		method := "GET"
		if i%2 == 1 {
			method = "POST" // nothing was sent to the dead one: POST may retry too
		}
		req, _ := http.NewRequest(method, e.srv.URL+"/", strings.NewReader("body"))
		req.Host = "web.x"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d (%s): got %d, want 200 after a retry", i, method, resp.StatusCode)
		}
	}
	if hits.Load() != 20 {
		t.Errorf("good backend got %d requests, want 20", hits.Load())
	}
	for _, ri := range e.r.Routes() {
		for _, u := range ri.Upstreams {
			if u.Addr == dead && (u.Available || u.Fails != 1) {
				t.Errorf("dead upstream: available=%v fails=%d, want marked down after one failure", u.Available, u.Fails)
			}
		}
	}
}

// An upstream that reads the request and then drops the connection: a GET
// is retried elsewhere, a POST is not (it may have been applied).
func TestNoRetryOfSentNonIdempotentRequest(t *testing.T) {
	e := newEnv(t, Config{})
	dropping := rawBackend(t, func(string) (string, bool) { return "", true })
	good, goodHits := backend(t, "good")
	e.instance("web", "1", dropping)
	e.instance("web", "2", addr(good))
	// Round robin starts at instance 1: the dropping one.
	req, _ := http.NewRequest("POST", e.srv.URL+"/", strings.NewReader("charge the card"))
	req.Host = "web.x"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || goodHits.Load() != 0 {
		t.Fatalf("POST: got %d with %d requests on the good backend, want 502 and 0", resp.StatusCode, goodHits.Load())
	}
	// The dropping upstream is now down: mark it up again to force the case.
	for _, u := range e.r.table.Load().apps["web"].upstreams {
		u.markHealthy()
	}
	e.r.table.Load().apps["web"].sides[sideStable].selector = &RoundRobin{}
	resp, body := e.get("web.x", "/")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "good") {
		t.Fatalf("GET: got %d %q, want a retry on the good backend", resp.StatusCode, body)
	}
}

func TestMaintenance503IsNotDeath(t *testing.T) {
	e := newEnv(t, Config{})
	maint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(503)
	}))
	defer maint.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer broken.Close()
	e.instance("maint", "1", addr(maint))
	e.instance("broken", "1", addr(broken))
	e.get("maint.x", "/")
	e.get("broken.x", "/")
	for _, ri := range e.r.Routes() {
		want := ri.App == "maint"
		if got := ri.Upstreams[0].Available; got != want {
			t.Errorf("%s: available=%v, want %v", ri.App, got, want)
		}
	}
}

func TestNoLiveInstancePages(t *testing.T) {
	e := newEnv(t, Config{RetryAfter: 7 * time.Second})
	e.domain("down.example.com", "down")
	e.domain("sleepy.example.com", "sleepy")
	e.status("sleepy", registry.Status{Current: registry.StatusPassivated, Expected: registry.StatusPassivated})
	resp, body := e.get("down.example.com", "/")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "7" || !strings.Contains(body, "no live instance") {
		t.Errorf("down: got %d %q %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	resp, body = e.get("sleepy.example.com", "/", "Accept", "text/html")
	if resp.StatusCode != 503 || resp.Header.Get("X-Berth-Page") != "waiting" || !strings.Contains(body, "refresh") ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("sleepy: got %d %v %q", resp.StatusCode, resp.Header, body)
	}
}

func TestForwardedHeaders(t *testing.T) {
	e := newEnv(t, Config{})
	s, _ := backend(t, "b")
	e.instance("web", "1", addr(s))
	_, body := e.get("web.x", "/", "X-Forwarded-For", "6.6.6.6", "X-Real-IP", "6.6.6.6", "X-Forwarded-Proto", "https")
	if !strings.Contains(body, "xff=127.0.0.1 ") || !strings.Contains(body, "real=127.0.0.1 ") || !strings.Contains(body, "proto=http ") ||
		!strings.Contains(body, "host=web.x") {
		t.Errorf("untrusted client: %q", body)
	}
	e2 := newEnv(t, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	e2.instance("web", "1", addr(s))
	_, body = e2.get("web.x", "/", "X-Forwarded-For", "6.6.6.6", "X-Real-IP", "6.6.6.6", "X-Forwarded-Proto", "https")
	if !strings.Contains(body, "xff=6.6.6.6, 127.0.0.1 ") || !strings.Contains(body, "real=6.6.6.6 ") || !strings.Contains(body, "proto=https ") {
		t.Errorf("trusted proxy: %q", body)
	}
}

func TestHopByHopHeadersRemoved(t *testing.T) {
	e := newEnv(t, Config{})
	var got http.Header
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer s.Close()
	e.instance("web", "1", addr(s))
	e.get("web.x", "/", "Connection", "X-Secret", "X-Secret", "1", "Keep-Alive", "timeout=5", "Proxy-Authorization", "x")
	for _, h := range []string{"X-Secret", "Keep-Alive", "Proxy-Authorization"} {
		if got.Get(h) != "" {
			t.Errorf("hop-by-hop header %s reached the upstream", h)
		}
	}
}

func TestWebSocket(t *testing.T) {
	e := newEnv(t, Config{})
	up := websocket.Upgrader{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(mt, append([]byte("echo "), msg...))
		}
	}))
	defer s.Close()
	e.instance("ws", "1", addr(s))
	d := websocket.Dialer{NetDial: func(network, _ string) (net.Conn, error) {
		return net.Dial(network, strings.TrimPrefix(e.srv.URL, "http://"))
	}}
	c, _, err := d.Dial("ws://ws.example.com/socket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprint("hi", i)))
		_, msg, err := c.ReadMessage()
		if err != nil || string(msg) != fmt.Sprint("echo hi", i) {
			t.Fatalf("got %q %v", msg, err)
		}
	}
	if a := e.r.table.Load().apps["ws"].stats.active.Load(); a != 1 {
		t.Errorf("an open websocket counts as %d active connections, want 1", a)
	}
}

func TestServerSentEventsFlushAtOnce(t *testing.T) {
	e := newEnv(t, Config{})
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
	}))
	defer s.Close()
	defer close(release)
	e.instance("sse", "1", addr(s))
	req, _ := http.NewRequest("GET", e.srv.URL+"/events", nil)
	req.Host = "sse.x"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("got %q %v: the event did not arrive while the stream is open", line, err)
	}
}

func TestMaxConns(t *testing.T) {
	e := newEnv(t, Config{})
	block := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer s.Close()
	defer close(block)
	k, _ := e.keys.App("limited")
	e.put(k, map[string]any{"name": "limited", "routing": map[string]any{"maxConns": 1}})
	e.instance("limited", "1", addr(s))
	go func() {
		req, _ := http.NewRequest("GET", e.srv.URL+"/", nil)
		req.Host = "limited.x"
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for e.r.table.Load().apps["limited"].stats.active.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	resp, _ := e.get("limited.x", "/")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second request over maxConns 1: got %d", resp.StatusCode)
	}
}

func TestAdminAndAccessRecords(t *testing.T) {
	e := newEnv(t, Config{ID: "r1", AccessInterval: 20 * time.Millisecond})
	s, _ := backend(t, "b")
	e.instance("web", "1", addr(s))
	e.get("web.x", "/")
	e.waitAccess(e.runAccess("web"), func(a registry.Access) bool { return a.LastMS != 0 })
	admin := httptest.NewServer(e.r.AdminHandler(prometheus.NewRegistry(), false))
	defer admin.Close()
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/routes": `"app":"web"`} {
		resp, err := http.Get(admin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: got %d %q", path, resp.StatusCode, b)
		}
	}
	// Nothing administrative on the public listener.
	if resp, _ := e.get("web.x", "/routes"); !strings.HasPrefix(fmt.Sprint(resp.StatusCode), "2") {
		t.Logf("public /routes is proxied to the app, as it should be")
	}
}

// runAccess writes the router's access records on a lease until the test
// ends and returns the key of app's.
func (e *env) runAccess(app string) string {
	e.t.Helper()
	log, _ := test.NewNullLogger()
	owner := registry.NewLeaseOwner(e.rcli, e.rcli, 5*time.Second, log)
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	go owner.Run(ctx)
	go e.r.RunAccess(ctx, e.keys, owner)
	key, _ := e.keys.Access(app, e.r.cfg.ID)
	return key
}

// waitAccess waits until the access record at key is on a lease and
// satisfies ok.
func (e *env) waitAccess(key string, ok func(registry.Access) bool) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		r, err := e.cli.Get(context.Background(), key)
		if err == nil && len(r.Kvs) == 1 && r.Kvs[0].Lease != 0 {
			last = string(r.Kvs[0].Value)
			var a registry.Access
			if json.Unmarshal(r.Kvs[0].Value, &a) == nil && ok(a) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("access record %s: %s", key, last)
}

func TestSelectors(t *testing.T) {
	ups := []*Upstream{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	ups[0].inflight.Store(5)
	ups[1].inflight.Store(1)
	ups[2].inflight.Store(3)
	if got := (LeastConn{}).Select(ups); got.ID != "b" {
		t.Errorf("least conn: got %s, want b", got.ID)
	}
	for range 100 {
		if got := (P2C{}).Select(ups); got.ID == "a" {
			t.Fatal("p2c chose the most loaded of three")
		}
	}
}

func FuzzLookup(f *testing.F) {
	for _, s := range []string{"shop.example.com", "A.B.C:80", "[::1]:80", "...", ".", "x.", "*.a.com", ""} {
		f.Add(s)
	}
	tb := newTableBuilder(newMetrics())
	snap := &registry.Snapshot{Domains: map[string]string{"shop.example.com": "shop", "*.a.com": "shop"},
		Instances: map[string]map[string]*registry.Instance{"shop": {"1": {ID: "1", Addr: "127.0.0.1:1", State: registry.StateUp}}}}
	table := tb.build(snap)
	f.Fuzz(func(t *testing.T, host string) {
		r := table.lookup(host)
		if r != nil && r.app != "shop" {
			t.Fatalf("%q routed to %q", host, r.app)
		}
		n := normalizeHost(host)
		if normalizeHost(n) != n && !strings.HasPrefix(n, "[") {
			t.Fatalf("normalizeHost is not idempotent on %q: %q then %q", host, n, normalizeHost(n))
		}
	})
}

// TestNoFailuresWhileOtherRoutesChurn sends load to a stable route while
// other apps' instances change 100 times a second: not one request may
// fail.
func TestNoFailuresWhileOtherRoutesChurn(t *testing.T) {
	e := newEnv(t, Config{})
	stable, _ := backend(t, "stable")
	e.instance("stable", "1", addr(stable))
	other, _ := backend(t, "other")
	// The clients and the churn run until the churn has made 200 changes
	// (at least 2 s), however slow the machine: what counts is how many
	// changes the requests met, not how fast they came.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const changes = 200
	minEnd := time.Now().Add(2 * time.Second)
	var churned atomic.Int64
	go func() {
		defer cancel()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < changes || time.Now().Before(minEnd); i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			k, _ := e.keys.Instance(fmt.Sprintf("churn%d", i%20), fmt.Sprint(i%3))
			if i%2 == 0 {
				e.cli.Put(ctx, k, fmt.Sprintf(`{"addr":%q,"state":"up"}`, addr(other)))
			} else {
				e.cli.Delete(ctx, k)
			}
			churned.Add(1)
		}
	}()
	var total, failed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequest("GET", e.srv.URL+"/", nil)
				req.Host = "stable.example.com"
				resp, err := http.DefaultClient.Do(req)
				if ctx.Err() != nil && err != nil {
					return // the churn ended while this request was on its way
				}
				total.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 || churned.Load() < changes || total.Load() < 100 {
		t.Fatalf("%d of %d requests failed while %d changes churned (want 0 failed, %d changes, 100 requests)", failed.Load(), total.Load(), churned.Load(), changes)
	}
}

func h2cOnly() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

// TestH2CAndTrailersEndToEnd: a gRPC-style exchange over HTTP/2 without
// TLS on both sides, trailers included.
func TestH2CAndTrailersEndToEnd(t *testing.T) {
	e := newEnv(t, Config{})
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status")
		w.Header().Set("Content-Type", "application/grpc")
		fmt.Fprintf(w, "upstream saw HTTP/%d", r.ProtoMajor)
		w.Header().Set("Grpc-Status", "0")
	}))
	up.Config.Protocols = h2cOnly()
	up.Start()
	defer up.Close()
	k, _ := e.keys.App("grpc")
	e.put(k, map[string]any{"name": "grpc", "routing": map[string]any{"protocol": "h2c"}})
	e.instance("grpc", "1", addr(up))
	front := httptest.NewUnstartedServer(e.r)
	front.Config.Protocols = ServerProtocols()
	front.Start()
	defer front.Close()
	client := &http.Client{Transport: &http.Transport{Protocols: h2cOnly()}}
	req, _ := http.NewRequest("POST", front.URL+"/pkg.Service/Method", strings.NewReader("x"))
	req.Host = "grpc.example.com"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(body) != "upstream saw HTTP/2" || resp.Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("client proto %d, body %q, trailer %v", resp.ProtoMajor, body, resp.Trailer)
	}
}

// TestHTTP2OverTLSToClients: browsers get HTTP/2 over TLS.
func TestHTTP2OverTLSToClients(t *testing.T) {
	e := newEnv(t, Config{})
	s, _ := backend(t, "b")
	e.instance("web", "1", addr(s))
	front := httptest.NewUnstartedServer(e.r)
	front.EnableHTTP2 = true
	front.StartTLS()
	defer front.Close()
	req, _ := http.NewRequest("GET", front.URL+"/", nil)
	req.Host = "web.example.com"
	resp, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || !strings.HasPrefix(string(body), "b ") || !strings.Contains(string(body), "proto=https") {
		t.Fatalf("proto %d body %q", resp.ProtoMajor, body)
	}
}

// TestCertificatesFromEtcd: a certificate stored in etcd is served by SNI
// (exact and one-level wildcard), with no reload.
func TestCertificatesFromEtcd(t *testing.T) {
	key := bytes.Repeat([]byte{3}, seal.KeySize)
	e := newEnv(t, Config{RouterKey: key})
	s, _ := backend(t, "b")
	e.instance("web", "1", addr(s))
	certPEM, keyPEM, cert, err := etcdtest.SelfSigned("*.example.com")
	if err != nil {
		t.Fatal(err)
	}
	rcpt, _ := seal.RecipientFromKey(key)
	if err := registry.PutCert(context.Background(), e.cli, e.keys, "*.example.com", certPEM, keyPEM, rcpt); err != nil {
		t.Fatal(err)
	}
	bad, _ := e.keys.Cert("broken.example.org")
	e.put(bad, registry.Cert{Cert: "not a certificate", Key: "nor a key"}) // skipped with a warning
	front := httptest.NewUnstartedServer(e.r)
	front.TLS = &tls.Config{GetCertificate: e.r.GetCertificate}
	front.StartTLS()
	defer front.Close()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "web.example.com"}}}
	req, _ := http.NewRequest("GET", front.URL+"/", nil)
	req.Host = "web.example.com"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("TLS with the certificate from etcd: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Another name: no certificate from etcd, the handshake fails.
	client2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "web.other.org"}}}
	if _, err := client2.Get(front.URL + "/"); err == nil {
		t.Fatal("a host without a certificate got one")
	}
}

// TestStaleKeepAliveConnection: the upstream closes idle connections after
// 100ms; a POST after a pause must not be sent on the dead connection.
func TestStaleKeepAliveConnection(t *testing.T) {
	e := newEnv(t, Config{})
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %q", b)
	}))
	up.Config.IdleTimeout = 100 * time.Millisecond
	up.Start()
	defer up.Close()
	e.instance("web", "1", addr(up))
	for i := range 3 {
		req, _ := http.NewRequest("POST", e.srv.URL+"/", strings.NewReader(fmt.Sprint("order ", i)))
		req.Host = "web.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != fmt.Sprintf("got %q", fmt.Sprint("order ", i)) {
			t.Fatalf("POST %d after the upstream closed its idle connection: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(1200 * time.Millisecond) // past the upstream's idle timeout and staleAfter
	}
}
