package api

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// caller is who made a request, as the audit log records it.
type caller struct {
	Name  string // token name, or "local" for a token-less loopback read
	Scope string
}

type callerKey struct{}

func callerOf(r *http.Request) caller {
	c, _ := r.Context().Value(callerKey{}).(caller)
	return c
}

// tokenCache remembers looked-up tokens for a short TTL, so a client's
// burst of requests costs one etcd read; a revoked token stops working
// within the TTL. Unknown tokens are not cached (nothing to remember).
type tokenCache struct {
	ttl      time.Duration
	mu       sync.Mutex
	m        map[string]cachedToken // hash → record
	inflight map[string]*lookup     // hash → the look-up running for it
}

// lookup is one etcd read of a token that concurrent requests with the
// same token wait for, instead of each reading it.
type lookup struct {
	done chan struct{}
	rec  *TokenRecord
	err  error
}

// shared runs read once for every concurrent caller with hash.
func (c *tokenCache) shared(hash string, read func() (*TokenRecord, error)) (*TokenRecord, error) {
	c.mu.Lock()
	if l, ok := c.inflight[hash]; ok {
		c.mu.Unlock()
		<-l.done
		return l.rec, l.err
	}
	l := &lookup{done: make(chan struct{})}
	if c.inflight == nil {
		c.inflight = map[string]*lookup{}
	}
	c.inflight[hash] = l
	c.mu.Unlock()
	l.rec, l.err = read()
	c.mu.Lock()
	delete(c.inflight, hash)
	c.mu.Unlock()
	close(l.done)
	return l.rec, l.err
}

type cachedToken struct {
	rec TokenRecord
	at  time.Time
}

const maxCachedTokens = 1024

func (c *tokenCache) get(hash string) (TokenRecord, bool) {
	if c.ttl <= 0 {
		return TokenRecord{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[hash]
	if !ok || time.Since(e.at) > c.ttl {
		delete(c.m, hash)
		return TokenRecord{}, false
	}
	return e.rec, true
}

func (c *tokenCache) put(hash string, rec TokenRecord) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedTokens {
		clear(c.m)
	}
	c.m[hash] = cachedToken{rec: rec, at: time.Now()}
}

// authenticate checks the request's bearer token against the scope the
// route needs and returns the caller, or a 401/403 Error.
func (s *Server) authenticate(r *http.Request, need string) (caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if need == ScopeRead && s.cfg.OpenLocalReads && isLocal(r) {
			return caller{Name: "local", Scope: ScopeRead}, nil
		}
		s.metrics.authFailures.WithLabelValues("missing").Inc()
		return caller{}, errorf(http.StatusUnauthorized, "unauthorized", "this endpoint needs a bearer token (Authorization: Bearer <token>); create one with berth token create --scope "+need)
	}
	token, ok := strings.CutPrefix(h, "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || !strings.HasPrefix(token, tokenPrefix) || len(token) > 128 {
		s.metrics.authFailures.WithLabelValues("malformed").Inc()
		return caller{}, errorf(http.StatusUnauthorized, "unauthorized", "the Authorization header must be \"Bearer berth_...\" (a token from berth token create)")
	}
	hash := HashToken(token)
	rec, ok := s.tokens.get(hash)
	if !ok {
		found, err := s.tokens.shared(hash, func() (*TokenRecord, error) {
			// Not the request's context: the others waiting for this
			// read must not fail because its client went away.
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
			defer cancel()
			return lookupToken(ctx, s.kv, s.cfg.Keys, token)
		})
		if err != nil {
			return caller{}, toError(err)
		}
		if found == nil {
			s.metrics.authFailures.WithLabelValues("unknown").Inc()
			return caller{}, errorf(http.StatusUnauthorized, "unauthorized", "unknown or revoked token (berth token list)")
		}
		rec = *found
		s.tokens.put(hash, rec)
	}
	if need == ScopeAdmin && rec.Scope != ScopeAdmin {
		s.metrics.authFailures.WithLabelValues("scope").Inc()
		return caller{}, errorf(http.StatusForbidden, "forbidden", "token "+rec.Name+" has scope "+rec.Scope+"; this endpoint needs an admin token (berth token create --scope admin)")
	}
	return caller{Name: rec.Name, Scope: rec.Scope}, nil
}

// isLocal reports a request from a loopback address that names a
// loopback host: a web page elsewhere cannot read the API through a name
// it rebinds to 127.0.0.1 (DNS rebinding), since its Host is not local.
func isLocal(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return false
	}
	h := r.Host
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
