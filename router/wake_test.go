package router

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus/hooks/test"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
)

// starter plays the node agent: each time the app's expected state turns
// to started, it "starts" the app (registers a backend after a delay) and
// counts the start.
func starter(t testing.TB, e *env, app, addr string, delay time.Duration) *atomic.Int64 {
	t.Helper()
	var starts atomic.Int64
	key, _ := e.keys.Status(app)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	wch := e.cli.Watch(ctx, key, clientv3.WithPrevKV())
	go func() {
		for resp := range wch {
			for _, ev := range resp.Events {
				var cur, prev registry.Status
				json.Unmarshal(ev.Kv.Value, &cur)
				if ev.PrevKv != nil {
					json.Unmarshal(ev.PrevKv.Value, &prev)
				}
				if cur.Expected == registry.StatusStarted && prev.Expected != registry.StatusStarted {
					starts.Add(1)
					time.AfterFunc(delay, func() {
						k, _ := e.keys.Instance(app, "1")
						b, _ := json.Marshal(registry.Instance{Addr: addr, State: registry.StateUp})
						e.cli.Put(context.Background(), k, string(b))
					})
				}
			}
		}
	}()
	return &starts
}

func sleepingApp(t testing.TB, e *env, app string) {
	e.domain(app+".example.com", app)
	e.status(app, registry.Status{Current: registry.StatusPassivated, Expected: registry.StatusPassivated})
}

func TestWakeOnceForManyRequests(t *testing.T) {
	e := newEnv(t, Config{})
	log, _ := test.NewNullLogger()
	w := NewWaker(e.r, e.cli, e.keys, log)
	b, _ := backend(t, "woken")
	sleepingApp(t, e, "sleepy")
	starts := starter(t, e, "sleepy", addr(b), 300*time.Millisecond)

	const n = 200
	var wg sync.WaitGroup
	var ok, cold atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			method := "GET"
			if i%2 == 1 {
				method = "POST"
			}
			req, _ := http.NewRequest(method, e.srv.URL+"/api", strings.NewReader("x"))
			req.Host = "sleepy.example.com"
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.HasPrefix(string(body), "woken") {
				ok.Add(1)
			}
			if resp.Header.Get("X-Berth-Cold-Start") != "" {
				cold.Add(1)
			}
		}()
	}
	wg.Wait()
	if starts.Load() != 1 {
		t.Errorf("the app was started %d times, want exactly 1", starts.Load())
	}
	if ok.Load() != n || cold.Load() != n {
		t.Errorf("%d of %d held requests answered by the woken app, %d with X-Berth-Cold-Start", ok.Load(), n, cold.Load())
	}
	if got := testutil.ToFloat64(w.wakes); got != 1 {
		t.Errorf("wakes metric %v, want 1", got)
	}
}

func TestWakeBrowserGetsWaitingPage(t *testing.T) {
	e := newEnv(t, Config{})
	log, _ := test.NewNullLogger()
	NewWaker(e.r, e.cli, e.keys, log)
	b, _ := backend(t, "woken")
	sleepingApp(t, e, "sleepy")
	starter(t, e, "sleepy", addr(b), 200*time.Millisecond)
	resp, body := e.get("sleepy.example.com", "/", "Accept", "text/html,application/xhtml+xml")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Cache-Control") != "no-store" ||
		!strings.Contains(body, `http-equiv="refresh"`) || !strings.Contains(body, "sleepy") || !strings.Contains(body, "0 instance(s) up") {
		t.Fatalf("waiting page: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	// Nothing is up yet: the bar shows 0, not an indeterminate animation.
	if !strings.Contains(body, `<progress value="0" max="1">`) {
		t.Errorf("waiting page's progress bar: %q, want value 0", body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body = e.get("sleepy.example.com", "/", "Accept", "text/html")
		if resp.StatusCode == 200 && strings.HasPrefix(body, "woken") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app never came up for the browser: %d %q", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWakeQueueBoundAndDeadline(t *testing.T) {
	e := newEnv(t, Config{})
	log, _ := test.NewNullLogger()
	w := NewWaker(e.r, e.cli, e.keys, log)
	w.MaxQueue = 2
	w.Deadline = 300 * time.Millisecond
	sleepingApp(t, e, "never") // nobody starts it
	var wg sync.WaitGroup
	codes := make(chan int, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", e.srv.URL+"/", nil)
			req.Host = "never.example.com"
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				codes <- resp.StatusCode
				if resp.Header.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 503 {
			t.Errorf("got %d, want 503 (overflow or deadline)", c)
		}
	}
	if got := testutil.ToFloat64(w.rejected); got != 5 {
		t.Errorf("rejected %v, want 5 (3 over the queue bound, 2 past the deadline)", got)
	}
}

// Two routers on the same etcd, both receiving requests for a sleeping
// app: one wake.
func TestTwoRoutersOneWake(t *testing.T) {
	e := newEnv(t, Config{})
	log, _ := test.NewNullLogger()
	NewWaker(e.r, e.cli, e.keys, log)
	cache2 := registry.NewCache(e.cli, e.cli, registry.CacheConfig{Keys: e.keys}, log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go cache2.Run(ctx)
	r2, _ := New(Config{}, cache2, log)
	go r2.Run(ctx)
	NewWaker(r2, e.cli, e.keys, log)
	srv2 := serveFront(t, r2)
	defer srv2.Close()
	b, _ := backend(t, "woken")
	sleepingApp(t, e, "sleepy")
	for !r2.Ready() {
		time.Sleep(5 * time.Millisecond)
	}
	starts := starter(t, e, "sleepy", addr(b), 200*time.Millisecond)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := e.srv.URL
			if i%2 == 0 {
				base = srv2.URL
			}
			req, _ := http.NewRequest("GET", base+"/", nil)
			req.Host = "sleepy.example.com"
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if starts.Load() != 1 {
		t.Fatalf("started %d times across two routers, want 1", starts.Load())
	}
}
