package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
)

func (e *env) putInstance(app, id, state string) int64 {
	e.t.Helper()
	key, val, err := registry.InstanceKV(e.keys, &registry.Instance{App: app, ID: id, Addr: "127.0.0.1:" + strconv.Itoa(9000+len(id)), State: state})
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.cli.Put(context.Background(), key, val)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.Header.Revision
}

func TestAPIEventsStream(t *testing.T) {
	e := newEnv(t, nil)
	s := e.stream(e.read, nil)
	hello := s.next(t, evHello)
	if hello.id == "" || hello.id != strconv.FormatInt(e.srv.Hub().Revision(), 10) {
		t.Fatalf("hello id %q, hub at %d", hello.id, e.srv.Hub().Revision())
	}

	e.do("POST", "/v1/apps", e.admin, specYAML("shop", "1.0.0", "shop.example.com")).want(t, 200, "apply")
	// One transaction, one revision: only its last event carries the id.
	if ev := s.next(t, EvAppApplied); !strings.Contains(ev.data, `"app":"shop"`) || ev.id != "" {
		t.Fatalf("app.applied %+v: want the app, no id", ev)
	}
	if ev := s.next(t, EvDomainAdded); ev.id == "" {
		t.Fatalf("domain.added %+v: the revision's last event has no id", ev)
	}
	e.putInstance("shop", "1", registry.StateStarting)
	if ev := s.next(t, EvInstanceState); !strings.Contains(ev.data, `"state":"starting"`) {
		t.Fatalf("instance.state %+v", ev)
	}
	rev := e.putInstance("shop", "1", registry.StateUp)
	ev := s.next(t, EvInstanceUp)
	if ev.id != strconv.FormatInt(rev, 10) {
		t.Fatalf("instance.up id %q, want the put's revision %d", ev.id, rev)
	}
	registry.Transition(context.Background(), e.cli, e.keys, "shop", 0, registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted})
	s.next(t, EvStatus)
	e.do("POST", "/v1/apps/shop/passivate", e.admin, nil).want(t, 200, "passivate")
	if ev := s.next(t, EvPassivated); ev.data == "" {
		t.Fatal("app.passivated without data")
	}
	e.do("POST", "/v1/apps/shop/wake", e.admin, nil).want(t, 200, "wake")
	s.next(t, EvWoken)
	key, _ := e.keys.Instance("shop", "1")
	e.cli.Delete(context.Background(), key)
	if ev := s.next(t, EvInstanceDown); !strings.Contains(ev.data, `"id":"1"`) {
		t.Fatalf("instance.down %+v", ev)
	}
	e.do("POST", "/v1/apps/shop/deploys", e.admin, map[string]any{"spec": json.RawMessage(mustSpecJSON(t, "shop", "2.0.0")), "canary": 20}).want(t, 202, "deploy")
	if ev := s.next(t, EvDeploy); !strings.Contains(ev.data, `"phase":"canary"`) {
		t.Fatalf("deploy %+v", ev)
	}
}

func mustSpecJSON(t *testing.T, name, version string) []byte {
	t.Helper()
	apps, err := specParse(specYAML(name, version, name+".example.com"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(apps[0])
	return b
}

func TestAPIEventsResume(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.EventBuffer = 8 })
	s := e.stream(e.read, nil)
	s.next(t, evHello)
	e.putInstance("shop", "1", registry.StateUp)
	last := s.next(t, EvInstanceUp).id
	s.res.Body.Close()

	// Missed while away: three instances up.
	for _, id := range []string{"2", "3", "4"} {
		e.putInstance("shop", id, registry.StateUp)
	}
	until(t, "the hub to see the puts", func() bool {
		return e.srv.Hub().Revision() >= e.cache.Revision() && len(e.cache.Snapshot().Instances["shop"]) == 4
	})
	s2 := e.stream(e.read, map[string]string{"Last-Event-ID": last})
	s2.next(t, evHello)
	for _, want := range []string{"2", "3", "4"} {
		ev := s2.next(t, EvInstanceUp, evReset)
		if ev.typ == evReset || !strings.Contains(ev.data, `"id":"`+want+`"`) {
			t.Fatalf("resumed stream: got %+v, want instance %s up", ev, want)
		}
	}

	t.Run("too far behind: reset", func(t *testing.T) {
		for i := range 20 {
			e.putInstance("busy", strconv.Itoa(i), registry.StateUp)
		}
		until(t, "the hub to see the puts", func() bool {
			return len(e.cache.Snapshot().Instances["busy"]) == 20 && e.srv.Hub().Revision() == e.cache.Revision()
		})
		s3 := e.stream(e.read, map[string]string{"Last-Event-ID": last})
		s3.next(t, evHello)
		if ev := s3.next(t, evReset, EvInstanceUp); ev.typ != evReset || !strings.Contains(ev.data, "no longer held") {
			t.Fatalf("got %+v, want a reset", ev)
		}
	})
	t.Run("ahead of the view: reset", func(t *testing.T) {
		s4 := e.stream(e.read, map[string]string{"Last-Event-ID": "999999999"})
		s4.next(t, evHello)
		if ev := s4.next(t, evReset); !strings.Contains(ev.data, "ahead") {
			t.Fatalf("reset %+v", ev)
		}
	})
	t.Run("not a revision: 400", func(t *testing.T) {
		req, _ := http.NewRequest("GET", e.url+"/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+e.read)
		req.Header.Set("Last-Event-ID", "yesterday")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Fatalf("got %d", res.StatusCode)
		}
	})
}

// TestAPIEvents1000Clients: a thousand streams are served by the one watch
// of the registry cache: connecting them opens no watch.
func TestAPIEvents1000Clients(t *testing.T) {
	// Tokens remembered as in production (5s): a thousand connections
	// arriving at once cost one token look-up each otherwise.
	e := newEnv(t, func(c *Config) { c.TokenTTL = 5 * time.Second })
	const n = 1000
	if open := e.watcher.open.Load(); open != 1 {
		t.Fatalf("%d watches open before the clients, want the cache's 1", open)
	}
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	got := make(chan string, n)
	var ready sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range n {
		ready.Add(1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/events", nil)
			req.Header.Set("Authorization", "Bearer "+e.read)
			res, err := client.Do(req)
			if err != nil {
				ready.Done()
				got <- "error: " + err.Error()
				return
			}
			defer res.Body.Close()
			if res.StatusCode != 200 {
				b, _ := io.ReadAll(res.Body)
				ready.Done()
				got <- fmt.Sprintf("status %d: %s", res.StatusCode, b)
				return
			}
			ch := make(chan sseEvent, 16)
			go readSSE(res.Body, ch)
			if ev := <-ch; ev.typ != evHello {
				ready.Done()
				got <- "first event " + ev.typ
				return
			}
			ready.Done()
			for ev := range ch {
				if ev.typ == EvInstanceUp {
					got <- ev.data
					return
				}
			}
			got <- "stream ended"
		}()
	}
	ready.Wait()
	if c := e.srv.metrics.streams; gaugeValue(c) != n {
		select {
		case msg := <-got:
			t.Fatalf("berth_api_sse_clients = %v, want %d; a client: %s", gaugeValue(c), n, msg)
		default:
			t.Fatalf("berth_api_sse_clients = %v, want %d", gaugeValue(c), n)
		}
	}
	e.putInstance("fanout", "1", registry.StateUp)
	deadline := time.After(30 * time.Second)
	for i := range n {
		select {
		case d := <-got:
			if !strings.Contains(d, `"app":"fanout"`) {
				t.Fatalf("client %d: %s", i, d)
			}
		case <-deadline:
			t.Fatalf("only %d of %d clients got the event", i, n)
		}
	}
	// The cache may replace its watch (it re-lists when etcd is slow to
	// answer, as on a loaded machine), but never holds more than one.
	if open, peak := e.watcher.open.Load(), e.watcher.peak.Load(); open != 1 || peak != 1 {
		t.Fatalf("with %d clients: %d etcd watches open, at most %d at once; want 1 (opened in all: %d)", n, open, peak, e.watcher.n.Load())
	}
}

// TestAPIEventsSlowReader: a client that stops reading is dropped after
// the write timeout; meanwhile another client gets every event at once.
func TestAPIEventsSlowReader(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SSEWriteTimeout = time.Second; c.EventBuffer = 100000 })
	// The slow client: a small receive buffer, sends the request, never reads.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n", e.read)
	fast := e.stream(e.read, nil)
	fast.next(t, evHello)
	until(t, "both streams", func() bool { return gaugeValue(e.srv.metrics.streams) == 2 })

	// Big events (tags) so the slow client's buffers fill: ~8 MB in all.
	tags := make([]string, 40)
	for i := range tags {
		tags[i] = strings.Repeat("t", 30) + strconv.Itoa(i)
	}
	const total = 6000
	ctx := context.Background()
	for b := 0; b < total/100; b++ {
		var ops []clientv3.Op
		for i := range 100 {
			key, val, _ := registry.InstanceKV(e.keys, &registry.Instance{App: "big", ID: strconv.Itoa(b*100 + i), Addr: "127.0.0.1:80", State: registry.StateUp, Tags: tags})
			ops = append(ops, clientv3.OpPut(key, val))
		}
		if _, err := e.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	seen := 0
	for seen < total {
		ev := fast.next(t, EvInstanceUp, evReset)
		if ev.typ == evReset {
			t.Fatalf("the fast client got a reset after %d events", seen)
		}
		seen++
	}
	t.Logf("fast client got %d events in %s after the writes", seen, time.Since(start).Round(time.Millisecond))
	until(t, "the slow client to be dropped", func() bool { return counterValue(e.srv.metrics.dropped) >= 1 })
	until(t, "one stream left", func() bool { return gaugeValue(e.srv.metrics.streams) == 1 })
	io.Copy(io.Discard, conn) // ends once the server has closed it
}
