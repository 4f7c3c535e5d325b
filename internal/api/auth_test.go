package api

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAPIAuth(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		name, method, path, token string
		want                      int
	}{
		{"no token on a read", "GET", "/v1/apps", "", http.StatusUnauthorized},
		{"no token on a mutation", "POST", "/v1/apps/shop/scale", "", http.StatusUnauthorized},
		{"not a bearer token", "GET", "/v1/apps", "Basic", http.StatusUnauthorized},
		{"unknown token", "GET", "/v1/apps", "berth_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", http.StatusUnauthorized},
		{"read token reads", "GET", "/v1/apps", e.read, http.StatusOK},
		{"read token cannot mutate", "POST", "/v1/apps/shop/scale", e.read, http.StatusForbidden},
		{"read token cannot read the audit log", "GET", "/v1/audit", e.read, http.StatusForbidden},
		{"admin token reads", "GET", "/v1/status", e.admin, http.StatusOK},
		{"metrics need a token", "GET", "/metrics", "", http.StatusUnauthorized},
		{"openapi is public", "GET", "/v1/openapi.json", "", http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, e.url+c.path, strings.NewReader(`{"instances":2}`))
			switch {
			case c.token == "Basic":
				req.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
			case c.token != "":
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != c.want {
				t.Fatalf("got %d, want %d", res.StatusCode, c.want)
			}
			if c.want == http.StatusUnauthorized && res.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			if ct := res.Header.Get("Content-Type"); c.want >= 400 && ct != "application/json" {
				t.Fatalf("error with Content-Type %q, want application/json", ct)
			}
		})
	}

	t.Run("revoked token", func(t *testing.T) {
		tok := e.token("short-lived", ScopeRead)
		e.do("GET", "/v1/apps", tok, nil).want(t, 200, "before revoke")
		gone, err := RevokeTokens(context.Background(), e.cli, e.keys, "short-lived")
		if err != nil || len(gone) != 1 {
			t.Fatalf("revoke: %v, %d", err, len(gone))
		}
		r := e.do("GET", "/v1/apps", tok, nil).want(t, 401, "after revoke")
		if !strings.Contains(r.error().Message, "revoked") {
			t.Fatalf("message %q does not say revoked", r.error().Message)
		}
	})

	t.Run("only hashes are stored", func(t *testing.T) {
		resp, err := e.cli.Get(context.Background(), e.keys.TokensPrefix(), clientWithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) < 2 {
			t.Fatalf("got %d token records", len(resp.Kvs))
		}
		for _, kv := range resp.Kvs {
			if strings.Contains(string(kv.Key)+string(kv.Value), strings.TrimPrefix(e.admin, tokenPrefix)) ||
				strings.Contains(string(kv.Key)+string(kv.Value), strings.TrimPrefix(e.read, tokenPrefix)) {
				t.Fatalf("token stored in clear: %s", kv.Key)
			}
		}
	})
}

func TestAPILocalReads(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.OpenLocalReads = true })
	e.do("GET", "/v1/apps", "", nil).want(t, 200, "token-less read from loopback")
	e.do("POST", "/v1/apps/shop/scale", "", `{"instances":2}`).want(t, 401, "token-less mutation from loopback")
	// A page of another site whose name resolves to 127.0.0.1 (DNS
	// rebinding) sends its own Host: no token-less read for it.
	req, _ := http.NewRequest("GET", e.url+"/v1/apps", nil)
	req.Host = "evil.example:9090"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("read with a foreign Host: got %d, want 401", res.StatusCode)
	}
}

// TestAPITokenLookupShared: concurrent requests with one token (a
// reconnect storm) cost one etcd read.
func TestAPITokenLookupShared(t *testing.T) {
	c := &tokenCache{ttl: time.Second, m: map[string]cachedToken{}}
	var reads atomic.Int32
	release := make(chan struct{})
	var wg, entered sync.WaitGroup
	for range 50 {
		wg.Add(1)
		entered.Add(1)
		go func() {
			defer wg.Done()
			entered.Done()
			rec, err := c.shared("h", func() (*TokenRecord, error) {
				reads.Add(1)
				<-release
				return &TokenRecord{Name: "n", Scope: ScopeRead}, nil
			})
			if err != nil || rec.Name != "n" {
				t.Errorf("got %v, %v", rec, err)
			}
		}()
	}
	entered.Wait()
	time.Sleep(100 * time.Millisecond) // every caller is in shared, queued behind the first read
	close(release)
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d reads for 50 concurrent look-ups, want 1", n)
	}
}
