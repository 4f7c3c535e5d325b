package router

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestActiveHealthChecks: an instance whose health path fails is taken out
// of rotation by the router's own probes, although its other paths still
// answer 200 (passive health alone would keep sending it requests), and
// comes back when the probe passes again.
func TestActiveHealthChecks(t *testing.T) {
	e := newEnv(t, Config{})
	go e.r.RunHealth(t.Context())
	var sick atomic.Bool
	instance := func(name string, failing *atomic.Bool) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" && failing != nil && failing.Load() {
				http.Error(w, "database unreachable", http.StatusInternalServerError)
				return
			}
			fmt.Fprint(w, name)
		}))
		t.Cleanup(s.Close)
		return s
	}
	good, bad := instance("good", nil), instance("bad", &sick)
	k, _ := e.keys.App("web")
	e.put(k, map[string]any{"name": "web", "routing": map[string]any{"activeHealth": true},
		"health": map[string]any{"http": "/healthz", "interval": "100ms", "timeout": "1s"}})
	e.instance("web", "1", addr(good))
	e.instance("web", "2", addr(bad))
	answers := func() map[string]int {
		seen := map[string]int{}
		for range 10 {
			_, body := e.get("web.example.com", "/")
			seen[body]++
		}
		return seen
	}
	probeFailing := func() bool {
		for _, ri := range e.r.Routes() {
			for _, u := range ri.Upstreams {
				if ri.App == "web" && strings.HasSuffix(addr(bad), u.Addr) {
					return u.ProbeFailing
				}
			}
		}
		return false
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if seen := answers(); seen["bad"] == 0 || seen["good"] == 0 {
		t.Fatalf("both healthy: answers %v", seen)
	}
	sick.Store(true)
	waitFor("the failing probe", probeFailing)
	if seen := answers(); seen["bad"] != 0 {
		t.Fatalf("an instance failing its health check got requests: %v", seen)
	}
	sick.Store(false)
	waitFor("the passing probe", func() bool { return !probeFailing() })
	if seen := answers(); seen["bad"] == 0 {
		t.Fatalf("the recovered instance got no requests: %v", seen)
	}
	if n := counterValue(t, e.r.metrics.healthChecks.WithLabelValues("web", "fail")); n == 0 {
		t.Fatal("no failed probe counted")
	}
}
