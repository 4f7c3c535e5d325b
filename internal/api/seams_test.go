package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/berthproject/berth/internal/registry"
)

// TestConsoleSeams checks what the web console takes from the API: the
// routes' auth rule, the hub's recent events, a handler on the API's mux.
func TestConsoleSeams(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.OpenLocalReads = true })
	for _, id := range []string{"1", "2"} {
		k, _ := e.keys.Instance("shop", id)
		if _, err := e.cli.Put(t.Context(), k, `{"addr":"127.0.0.1:400`+id+`","state":"up"}`); err != nil {
			t.Fatal(err)
		}
	}
	until(t, "two instance events", func() bool { return len(e.srv.Hub().Recent("shop", 10)) >= 2 })
	k, _ := e.keys.Instance("blog", "1")
	if _, err := e.cli.Put(t.Context(), k, `{"addr":"127.0.0.1:4100","state":"up"}`); err != nil {
		t.Fatal(err)
	}
	until(t, "blog's event", func() bool { return len(e.srv.Hub().Recent("blog", 10)) == 1 })
	got := e.srv.Hub().Recent("shop", 10)
	if len(got) != 2 || got[0].Name != "1" || got[1].Name != "2" || got[0].Type != EvInstanceUp {
		t.Fatalf("Recent(shop): got %+v, want instance.up 1 then 2", got)
	}
	if got := e.srv.Hub().Recent("", 1); len(got) != 1 || got[0].App != "blog" {
		t.Fatalf("Recent(\"\", 1): got %+v, want the newest (blog)", got)
	}

	for _, c := range []struct {
		name, remote, token, scope string
		want                       int // 0: allowed
	}{
		{"local read", "127.0.0.1:5000", "", ScopeRead, 0},
		{"remote read without token", "192.0.2.1:5000", "", ScopeRead, 401},
		{"remote read with read token", "192.0.2.1:5000", e.read, ScopeRead, 0},
		{"admin with read token", "127.0.0.1:5000", e.read, ScopeAdmin, 403},
		{"admin with admin token", "192.0.2.1:5000", e.admin, ScopeAdmin, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://127.0.0.1/", nil)
			r.RemoteAddr = c.remote
			if c.token != "" {
				r.Header.Set("Authorization", "Bearer "+c.token)
			}
			_, err := e.srv.Authorize(r, c.scope)
			got := 0
			if err != nil {
				got = toError(err).Status
			}
			if got != c.want {
				t.Fatalf("got %d (%v), want %d", got, err, c.want)
			}
		})
	}

	if e.srv.Source() != registry.Source(e.cache) {
		t.Fatal("Source is not the server's cache")
	}
	e.srv.Handle("GET /console-seam", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if r := e.do("GET", "/console-seam", "", nil); r.code != http.StatusTeapot {
		t.Fatalf("a handler added with Handle: got %d", r.code)
	}
	if r := e.do("GET", "/nosuch", "", nil); r.code != 404 {
		t.Fatalf("unknown path after Handle: got %d, want the API's 404", r.code)
	}
}
