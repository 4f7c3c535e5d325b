package router

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthproject/berth/internal/registry"
)

func (e *env) instanceGen(app, id, addr string, gen int64) {
	e.t.Helper()
	k, _ := e.keys.Instance(app, id)
	e.put(k, registry.Instance{Addr: addr, State: registry.StateUp, Gen: gen})
}

func (e *env) rollout(app string, ro registry.Rollout) {
	e.t.Helper()
	k, _ := e.keys.RolloutKey(app)
	e.put(k, ro)
}

// send makes a request for web.x with the given Cookie header ("" for
// none) and returns the answering backend's name and the Set-Cookie
// headers.
func (e *env) send(method, cookie string) (status int, backend string, setCookies []string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+"/", nil)
	req.Host = "web.x"
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	name, _, _ := strings.Cut(string(b), " ")
	return resp.StatusCode, name, resp.Header.Values("Set-Cookie")
}

// generations starts two instances of generation 1 ("old1", "old2") and
// two of generation 2 ("new1", "new2") of app web.
func generations(t *testing.T, e *env) {
	t.Helper()
	for _, in := range []struct {
		id, name string
		gen      int64
	}{{"1", "old1", 0}, {"2", "old2", 1}, {"2.1", "new1", 2}, {"2.2", "new2", 2}} {
		s, _ := backend(t, in.name)
		e.instanceGen("web", in.id, addr(s), in.gen)
	}
}

const (
	stableCookie = "berth-rollout-web=1; Path=/; HttpOnly; SameSite=Lax"
	canaryCookie = "berth-rollout-web=2; Path=/; HttpOnly; SameSite=Lax"
)

func TestRolloutPhasesRoute(t *testing.T) {
	e := newEnv(t, Config{})
	generations(t, e)
	all, old, next := "new1 new2 old1 old2", "old1 old2", "new1 new2"
	for _, tc := range []struct {
		phase string // "" for no rollout record yet
		want  string // backends that answer, sorted
	}{
		{"", all},
		{registry.PhaseRolling, all},
		{registry.PhaseStarting, old},
		{registry.PhaseSwitched, next},
		{registry.PhaseRollingBack, old},
		{registry.PhaseRolledBack, all}, // ended: every live instance
	} {
		t.Run(cmp.Or(tc.phase, "none"), func(t *testing.T) {
			if tc.phase != "" {
				e.rollout("web", registry.Rollout{From: 1, To: 2, Strategy: registry.StrategyBlueGreen, Phase: tc.phase})
			}
			hits := map[string]int{}
			for range 40 {
				status, name, set := e.send("GET", "")
				if status != 200 || len(set) != 0 {
					t.Fatalf("got %d from %q with Set-Cookie %q, want 200 and no cookie outside a canary", status, name, set)
				}
				hits[name]++
			}
			if got := strings.Join(slices.Sorted(maps.Keys(hits)), " "); got != tc.want {
				t.Errorf("answered by %s (%v), want %s", got, hits, tc.want)
			}
		})
	}
}

func TestCanarySplit(t *testing.T) {
	for _, pct := range []int{10, 50} {
		t.Run(fmt.Sprint(pct, "%"), func(t *testing.T) {
			e := newEnv(t, Config{})
			generations(t, e)
			e.rollout("web", registry.Rollout{From: 1, To: 2, Strategy: registry.StrategyRolling, Canary: pct, Phase: registry.PhaseCanary})
			canary := 0
			for i := range 1000 {
				status, name, set := e.send("GET", "")
				want := stableCookie
				if strings.HasPrefix(name, "new") {
					canary++
					want = canaryCookie
				}
				if status != 200 || len(set) != 1 || set[0] != want {
					t.Fatalf("request %d: got %d from %s with Set-Cookie %q, want 200 and %q", i, status, name, set, want)
				}
			}
			if lo, hi := (pct-5)*10, (pct+5)*10; canary < lo || canary > hi {
				t.Errorf("canary took %d of 1000 new clients, want %d..%d", canary, lo, hi)
			}
			t.Logf("canary took %d of 1000 new clients at %d%%", canary, pct)
		})
	}
}

func TestCanaryStickiness(t *testing.T) {
	e := newEnv(t, Config{})
	generations(t, e)
	e.rollout("web", registry.Rollout{From: 1, To: 2, Strategy: registry.StrategyRolling, Canary: 10, Phase: registry.PhaseCanary})
	for _, tc := range []struct{ cookie, side string }{
		{"berth-rollout-web=2", "new"},
		{"theme=dark; berth-rollout-web=2; lang=nl", "new"},
		{"berth-rollout-web=1", "old"},
		{"berth-rollout-web=1; berth-rollout-web=2", "old"}, // the first one counts
	} {
		for range 30 {
			status, name, set := e.send("GET", tc.cookie)
			if status != 200 || !strings.HasPrefix(name, tc.side) || len(set) != 0 {
				t.Fatalf("Cookie %q: got %d from %s with Set-Cookie %q, want 200 from %s* and no new cookie", tc.cookie, status, name, set, tc.side)
			}
		}
	}
	// Values this router did not write make a new client: assigned by the
	// split and given a cookie of its own, never the value it sent.
	for _, bad := range []string{
		"berth-rollout-web=", "berth-rollout-web=02", "berth-rollout-web=+2", "berth-rollout-web=2.0",
		"berth-rollout-web=0x2", "berth-rollout-web=3", "berth-rollout-web=-1", "berth-rollout-web=stable",
		"berth-rollout-web=99999999999999999999999", "berth-rollout-web=<script>alert(1)</script>",
		"berth-rollout-web=%32", "berth-rollout-web=2,2", "berth-rollout-web=2\\", "berth-rollout-web=é",
		"berth-rollout-web=" + strings.Repeat("2", 4000), "berth-rollout-other=2", "BERTH-ROLLOUT-WEB=2",
		"berth-rollout-web", "=2", ";;;", "berth-rollout-web=\"2",
	} {
		status, name, set := e.send("GET", bad)
		want := stableCookie
		if strings.HasPrefix(name, "new") {
			want = canaryCookie
		}
		if status != 200 || len(set) != 1 || set[0] != want {
			t.Errorf("Cookie %q: got %d from %s with Set-Cookie %q, want 200 and %q", bad, status, name, set, want)
		}
	}
}

// A canary whose only instance does not answer: its requests go to the
// stable side, not one fails, and new clients are kept on stable.
func TestCanaryDownFailsOverToStable(t *testing.T) {
	e := newEnv(t, Config{FailWindow: time.Minute})
	for _, id := range []string{"1", "2"} {
		s, _ := backend(t, "old"+id)
		e.instanceGen("web", id, addr(s), 1)
	}
	e.instanceGen("web", "2.1", deadAddr(t), 2)
	e.rollout("web", registry.Rollout{From: 1, To: 2, Strategy: registry.StrategyRolling, Canary: 50, Phase: registry.PhaseCanary})
	// The second new client is the canary's: it fails over, and gets the
	// cookie of the side that answered.
	for i := range 100 {
		cookie, method := "", "GET"
		if i%2 == 1 && i > 1 {
			cookie, method = "berth-rollout-web=2", "POST" // nothing reached the canary: a POST fails over too
		}
		status, name, set := e.send(method, cookie)
		if status != 200 || !strings.HasPrefix(name, "old") {
			t.Fatalf("request %d: got %d from %q, want 200 from stable", i, status, name)
		}
		if cookie == "" && (len(set) != 1 || set[0] != stableCookie) {
			t.Fatalf("request %d: Set-Cookie %q, want the stable one (stable answered)", i, set)
		}
		if cookie != "" && len(set) != 0 {
			t.Fatalf("request %d: a canary client's cookie was replaced by %q", i, set)
		}
	}
	for _, u := range e.r.Routes()[0].Upstreams {
		if u.Canary && (u.Available || u.Fails != 1) {
			t.Errorf("canary upstream: available %v, %d failures; want tried once and out of rotation", u.Available, u.Fails)
		}
	}
}

// A canary that answers 500 to every request: the access record and the
// metrics count each generation's requests and 5xx; the generation's
// counts leave the record when the rollout ends and its series when its
// last instance goes.
func TestGenerationCounters(t *testing.T) {
	e := newEnv(t, Config{ID: "r1", AccessInterval: 20 * time.Millisecond})
	stable, _ := backend(t, "old")
	e.instanceGen("web", "1", addr(stable), 1)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "new broken", http.StatusInternalServerError)
	}))
	defer broken.Close()
	e.instanceGen("web", "2.1", addr(broken), 2)
	e.rollout("web", registry.Rollout{From: 1, To: 2, Strategy: registry.StrategyRolling, Canary: 50, Phase: registry.PhaseCanary})
	for range 100 {
		e.send("POST", "") // not idempotent: a 500 does not take the canary out of rotation
	}
	key := e.runAccess("web")
	want := map[int64]registry.GenCounts{1: {Requests: 50}, 2: {Requests: 50, Errors5xx: 50}}
	e.waitAccess(key, func(a registry.Access) bool { return fmt.Sprint(a.Gens) == fmt.Sprint(want) })

	reg := prometheus.NewRegistry()
	reg.MustRegister(e.r.Collectors()...)
	admin := httptest.NewServer(e.r.AdminHandler(reg, false))
	defer admin.Close()
	metricsText := func() string {
		resp, err := http.Get(admin.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	m := metricsText()
	for _, line := range []string{
		`berth_router_generation_requests_total{app="web",code="2xx",gen="1"} 50`,
		`berth_router_generation_requests_total{app="web",code="5xx",gen="2"} 50`,
	} {
		if !strings.Contains(m, line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	var routes []RouteInfo
	resp, _ := http.Get(admin.URL + "/routes")
	json.NewDecoder(resp.Body).Decode(&routes)
	resp.Body.Close()
	if len(routes) != 1 || routes[0].Canary == nil || routes[0].Canary.Gen != 2 || routes[0].Canary.NewClients != 100 {
		t.Errorf("/routes: %+v, want web's canary of generation 2 with 100 new clients", routes)
	}

	// Promoted: the old generation goes, the rollout ends.
	k, _ := e.keys.Instance("web", "1")
	if _, err := e.cli.Delete(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	e.rollout("web", registry.Rollout{From: 1, To: 2, Strategy: registry.StrategyRolling, Canary: 50, Phase: registry.PhaseDone})
	http.DefaultClient.CloseIdleConnections() // the canary's connections stay with net/http
	e.send("GET", "")                         // no canary: on the fast lane, which counts by generation too
	e.waitAccess(key, func(a registry.Access) bool { return a.Gens == nil })
	if m := metricsText(); strings.Contains(m, `gen="1"`) || !strings.Contains(m, `berth_router_generation_requests_total{app="web",code="5xx",gen="2"} 51`+"\n") ||
		!strings.Contains(m, "berth_router_fast_lane_requests_total 1\n") {
		t.Errorf("after generation 1 left, /metrics has:\n%s", m)
	}
}

func TestPickStaysOnItsSide(t *testing.T) {
	s1, s2, c1 := &Upstream{ID: "1"}, &Upstream{ID: "2"}, &Upstream{ID: "2.1"}
	rt := &route{sides: [2]side{{upstreams: []*Upstream{s1, s2}, selector: &RoundRobin{}}, {upstreams: []*Upstream{c1}, selector: &RoundRobin{}}}}
	now := time.Now().UnixNano()
	for _, tc := range []struct {
		name  string
		side  int
		tried []*Upstream
		down  []*Upstream
		want  []*Upstream // any of
	}{
		{"stable", sideStable, nil, nil, []*Upstream{s1, s2}},
		{"a retry stays on stable", sideStable, []*Upstream{s1}, nil, []*Upstream{s2}},
		{"stable exhausted: the canary", sideStable, []*Upstream{s1, s2}, nil, []*Upstream{c1}},
		{"canary", sideCanary, nil, nil, []*Upstream{c1}},
		{"canary exhausted: stable", sideCanary, []*Upstream{c1}, nil, []*Upstream{s1, s2}},
		{"canary down: stable before trying it anyway", sideCanary, nil, []*Upstream{c1}, []*Upstream{s1, s2}},
		{"all down: its own side first", sideCanary, nil, []*Upstream{s1, s2, c1}, []*Upstream{c1}},
		{"all tried", sideStable, []*Upstream{s1, s2, c1}, nil, []*Upstream{nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, u := range []*Upstream{s1, s2, c1} {
				u.markHealthy()
			}
			for _, u := range tc.down {
				u.markFailed(time.Minute)
			}
			for range 4 {
				got := pick(rt, tc.side, tc.tried, now)
				if !slices.Contains(tc.want, got) {
					t.Fatalf("got %v, want one of %v", got, tc.want)
				}
			}
		})
	}
}

// The split over new clients is exact: percent of every 100.
func TestCanarySplitIsExact(t *testing.T) {
	for _, pct := range []int{1, 10, 33, 50, 99, 100} {
		c := newCanarySplit("web", registry.Serving{Gen: 2, Percent: pct}, 1, new(atomic.Uint64))
		for window := range 10 {
			n := 0
			for range 100 {
				if c.toCanary() {
					n++
				}
			}
			if n != pct {
				t.Fatalf("%d%%: window %d sent %d of 100 to the canary", pct, window, n)
			}
		}
	}
}

// FuzzRolloutCookie: whatever Cookie header a client sends, the split
// does not panic, keeps a client only on a value it wrote itself, and its
// Set-Cookie is one of the two it built.
func FuzzRolloutCookie(f *testing.F) {
	for _, s := range []string{"berth-rollout-web=2", "berth-rollout-web=1", "berth-rollout-web=\"2\"", "berth-rollout-web=02",
		"a=b; berth-rollout-web=2", "berth-rollout-web=2; berth-rollout-web=1", "berth-rollout-web=\x00", "berth-rollout-web=2\r\nX: y",
		"berth-rollout-web=" + strings.Repeat("9", 100), ";", "=", ""} {
		f.Add(s, true)
	}
	c := newCanarySplit("web", registry.Serving{Gen: 2, Percent: 10}, 1, new(atomic.Uint64))
	up := map[int]*Upstream{sideStable: {gen: newGenStats("web", 1)}, sideCanary: {gen: newGenStats("web", 2)}}
	f.Fuzz(func(t *testing.T, header string, canaryAvailable bool) {
		req := &http.Request{Header: http.Header{"Cookie": {header}}}
		sd, newClient := c.assign(req, canaryAvailable)
		value := ""
		if ck, err := req.Cookie("berth-rollout-web"); err == nil {
			value = ck.Value
		}
		switch {
		case sd == sideCanary && !canaryAvailable:
			t.Fatalf("%q: the canary without an upstream", header)
		case !newClient && value != "1" && value != "2":
			t.Fatalf("%q: kept on a side by value %q", header, value)
		case newClient && (value == "1" || value == "2"):
			t.Fatalf("%q: value %q made a new client", header, value)
		}
		if got, want := c.setCookie(up[sd]), [2]string{stableCookie, canaryCookie}[sd]; got != want {
			t.Fatalf("%q: Set-Cookie %q", header, got)
		}
	})
}

// TestPickRetriesOnAnotherHost: a retry goes to an instance on another
// host than those tried (a dead node fails all its instances alike), and
// back to the tried host only when its side has no other.
func TestPickRetriesOnAnotherHost(t *testing.T) {
	a1, a2, a3 := &Upstream{ID: "1", Addr: "10.0.0.1:8001"}, &Upstream{ID: "2", Addr: "10.0.0.1:8002"}, &Upstream{ID: "3", Addr: "10.0.0.1:8003"}
	b1 := &Upstream{ID: "4", Addr: "10.0.0.2:8001"}
	rt := &route{sides: [2]side{{upstreams: []*Upstream{a1, a2, a3, b1}, selector: &RoundRobin{}}, {}}}
	now := time.Now().UnixNano()
	for range 8 {
		if got := pick(rt, sideStable, []*Upstream{a1}, now); got != b1 {
			t.Fatalf("after 10.0.0.1:8001 failed: %s, want the instance on 10.0.0.2", got.Addr)
		}
	}
	if got := pick(rt, sideStable, []*Upstream{a1, b1}, now); got != a2 && got != a3 {
		t.Fatalf("both hosts tried: %v, want another instance on 10.0.0.1", got)
	}
	b1.markFailed(time.Minute)
	defer b1.markHealthy()
	if got := pick(rt, sideStable, []*Upstream{a1}, now); got != a2 && got != a3 {
		t.Fatalf("the other host's instance down: %v, want one in rotation on the tried host before it", got)
	}
}
