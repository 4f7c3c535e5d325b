package console

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/berthproject/berth/internal/registry"
)

func TestConsolePages(t *testing.T) {
	e := newEnv(t, true)
	e.seed()
	until(t, "shop's instances on the apps page", func() bool {
		_, _, b := e.get("/", "")
		return strings.Contains(b, `data-up="1"`)
	})
	cases := []struct {
		name, path string
		code       int
		want       []string
	}{
		{"apps", "/", 200, []string{`<tr data-app="shop">`, `href="/apps/shop"`, "1/2", "1.2.0", `class="countdown"`, "(2 registered)"}},
		{"app", "/apps/shop", 200, []string{"shop.example.com", `data-instance="1"`, `data-instance="2"`, "shop@1.service",
			`href="/nodes#node-n1"`, `data-action="scale"`, `data-action="passivate"`, `data-action="rollback"`, `id="event-log"`, `<span class="etype">instance.up</span>`, "idle timeout 10m0s"}},
		{"nodes", "/nodes", 200, []string{`id="node-n1"`, "role=worker", "shop@1.service, shop@2.service"}},
		{"certificates", "/certificates", 200, []string{"No certificates"}},
		{"events", "/events", 200, []string{`aria-live="polite"`, `id="event-q"`, `<span class="etype">node.up</span>`}},
		{"unknown app", "/apps/nosuch", 404, []string{"no app nosuch"}},
		{"rows fragment", "/fragment/apps?app=shop&app=gone", 200, []string{`<tr data-app="shop">`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, h, body := e.get(c.path, "")
			if code != c.code {
				t.Fatalf("got status %d, want %d: %s", code, c.code, body)
			}
			if got := h.Get("Content-Security-Policy"); !strings.Contains(got, "script-src 'self'") || strings.Contains(got, "unsafe-inline") {
				t.Fatalf("got CSP %q, want script-src 'self' without unsafe-inline", got)
			}
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			if strings.Contains(body, "<script>") || strings.Contains(body, " style=") || strings.Contains(body, " onclick") {
				t.Errorf("page has inline script or style")
			}
		})
	}
	t.Run("static files", func(t *testing.T) {
		for _, p := range []string{"/static/console.js", "/static/style.css"} {
			code, h, body := e.get(p, "")
			if code != 200 || len(body) < 1000 || h.Get("Content-Security-Policy") == "" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("%s: status %d, %d bytes, headers %v", p, code, len(body), h)
			}
		}
	})
	t.Run("history", func(t *testing.T) {
		e.put(e.key(e.keys.Instance("shop", "2")), registry.Instance{Addr: "127.0.0.1:4002", Node: "n1", State: registry.StateUp})
		until(t, "instance 2's history to show starting then up", func() bool {
			m := e.con.hist.Marks("shop", "2")
			return len(m) == 2 && m[0].State == "starting" && m[1].State == "up"
		})
		if _, err := e.cli.Delete(t.Context(), e.key(e.keys.Instance("shop", "1"))); err != nil {
			t.Fatal(err)
		}
		until(t, "instance 1 listed as gone", func() bool {
			_, _, b := e.get("/apps/shop", "")
			return strings.Contains(b, `<tr data-instance="1" class="gone">`)
		})
	})
	t.Run("node lease", func(t *testing.T) {
		l, err := e.cli.Grant(t.Context(), 30)
		if err != nil {
			t.Fatal(err)
		}
		e.put(e.key(e.keys.Node("n2")), registry.Node{Addr: "127.0.0.2", Lease: int64(l.ID)})
		until(t, "n2's lease on the nodes page", func() bool {
			_, _, b := e.get("/nodes", "")
			return strings.Contains(b, `id="node-n2"`) && strings.Contains(b, "s of 30s left")
		})
		if _, err := e.cli.Revoke(t.Context(), l.ID); err != nil {
			t.Fatal(err)
		}
		e.put(e.key(e.keys.Node("n3")), registry.Node{Addr: "127.0.0.3", Lease: int64(l.ID)})
		until(t, "n3's expired lease", func() bool {
			_, _, b := e.get("/nodes", "")
			return strings.Contains(b, `<span class="badge bad">expired</span>`)
		})
	})
	t.Run("request rates from the access records", func(t *testing.T) {
		if r := e.con.hist.Rate("shop"); r.OK {
			t.Fatalf("a rate without counters: %+v", r)
		}
		ak := e.key(e.keys.Access("shop", "r1"))
		e.put(ak, registry.Access{LastMS: time.Now().UnixMilli(), Gens: map[int64]registry.GenCounts{1: {Requests: 100}}})
		time.Sleep(50 * time.Millisecond)
		e.put(ak, registry.Access{LastMS: time.Now().UnixMilli(), Gens: map[int64]registry.GenCounts{1: {Requests: 180, Errors5xx: 4}, 2: {Requests: 20, Errors5xx: 6}}})
		// Since the seed's record (no counters): 200 requests, 10 of them 5xx.
		until(t, "a rate with errors", func() bool { return e.con.hist.Rate("shop").ErrPerSec > 0 })
		r := e.con.hist.Rate("shop")
		if r.ErrShare < 0.0499 || r.ErrShare > 0.0501 || r.PerSec <= 0 || !r.OK {
			t.Fatalf("got %+v, want 5%% errors and a positive rate", r)
		}
		if _, _, b := e.get("/apps/shop", ""); !strings.Contains(b, "(5.0%)") {
			t.Fatal("the app page does not show the 5xx share")
		}
	})
	t.Run("metrics", func(t *testing.T) {
		if n := testutil.ToFloat64(e.con.metrics.pages.WithLabelValues("app", "404")); n != 1 {
			t.Fatalf("got %v app pages with 404 counted, want 1", n)
		}
		if n := testutil.CollectAndCount(e.con.metrics.duration); n < 5 {
			t.Fatalf("got render times of %d pages, want at least 5", n)
		}
	})
	t.Run("API routes keep theirs", func(t *testing.T) {
		code, h, _ := e.get("/v1/apps", "")
		if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Fatalf("GET /v1/apps: %d %s", code, h.Get("Content-Type"))
		}
		if code, _, _ := e.get("/nosuch", ""); code != 404 {
			t.Fatalf("GET /nosuch: %d, want 404", code)
		}
	})
}

// TestConsoleHostileValues puts markup in every registry value a page
// shows: it must arrive as text.
func TestConsoleHostileValues(t *testing.T) {
	e := newEnv(t, true)
	const x = `"><script>alert(1)</script><img src=x onerror=alert(2)>`
	e.put(e.key(e.keys.App("evil")), map[string]any{"apiVersion": "berth/v1", "name": "evil", "version": x,
		"runtime": "exec", "command": []string{"/bin/true"}, "instances": 1, "image": x, "env": map[string]string{"SECRET": x},
		"ports": []map[string]any{{"container": 8080}}})
	e.put(e.key(e.keys.Node(x)), registry.Node{Addr: "127.0.0.1", Metadata: map[string]string{x: x}})
	e.put(e.key(e.keys.Instance("evil", x)), registry.Instance{Addr: "127.0.0.1:4001", Node: x, Unit: x, Version: x, State: registry.StateUp})
	e.put(e.key(e.keys.Status("evil")), registry.Status{Current: registry.StatusFailed, Expected: registry.StatusStarted, Message: x,
		Units: map[string][]string{x: {x}}})
	// Names the key builders refuse, written as raw keys: if the cache
	// takes them, they must still arrive as text.
	const y = `<b onmouseover=alert(4)>`
	e.put(e.keys.Prefix()+"domains/"+y+".example.com", registry.Domain{App: "evil"})
	e.put(e.keys.Prefix()+"instances/"+y+"/1", registry.Instance{Addr: "127.0.0.1:4001", State: registry.StateUp})
	e.put(e.keys.Prefix()+"status/"+y, registry.Status{Current: registry.StatusStarted})
	until(t, "the hostile instance on the app page", func() bool {
		_, _, b := e.get("/apps/evil", "")
		return strings.Contains(b, "data-instance=")
	})
	for _, p := range []string{"/", "/apps/evil", "/nodes", "/events", "/fragment/apps?app=evil"} {
		_, _, body := e.get(p, "")
		for _, bad := range []string{"<script>alert", "<img src=x", "<b onmouseover"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: hostile markup %q reached the page unescaped", p, bad)
			}
		}
		if p == "/apps/evil" && !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s: the hostile value is not shown escaped", p)
		}
	}
	_, _, body := e.get("/apps/evil", "")
	if strings.Contains(body, "SECRET") {
		t.Errorf("the app page shows the spec's env")
	}
}

// TestConsoleAuth: without local reads, a page needs a read token; the
// token form shows no data.
func TestConsoleAuth(t *testing.T) {
	e := newEnv(t, false)
	e.seed()
	code, h, body := e.get("/", "")
	if code != 401 || !strings.Contains(body, `data-auth="required"`) || strings.Contains(body, "shop") {
		t.Fatalf("no token: got %d, want 401 with the token form and no data: %s", code, body)
	}
	if h.Get("Content-Security-Policy") == "" {
		t.Fatal("the token form has no CSP")
	}
	if code, _, _ := e.get("/", "berth_nonsense"); code != 401 {
		t.Fatalf("unknown token: got %d, want 401", code)
	}
	until(t, "shop with a read token", func() bool {
		code, _, body := e.get("/apps/shop", e.read)
		return code == 200 && strings.Contains(body, "shop@1.service")
	})
	// The static files are public: they hold no data.
	if code, _, _ := e.get("/static/console.js", ""); code != 200 {
		t.Fatalf("static file without token: %d", code)
	}
}
