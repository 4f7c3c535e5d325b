package router

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/berthproject/berth/internal/http1"
)

// errNoUpstream is returned when a request has no upstream left to try.
var errNoUpstream = errors.New("no live upstream")

type ctxKey struct{}

// requestInfo travels with a request from the handler to the transport.
type requestInfo struct {
	route     *route
	side      int  // the side the request was assigned (sideStable, sideCanary)
	newClient bool // a new client of a canary: the response sets the rollout cookie
	attempts  int  // upstreams tried
	upstream  *Upstream
	body      *clientBody // the request body, if any
}

func withInfo(ctx context.Context, info *requestInfo) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(ctxKey{}).(*requestInfo)
	return info
}

// retryTransport sends a request to an upstream chosen by the route's
// selector and retries on another one when that is safe: after a dial
// error (nothing was sent) for any request, after other errors only for
// idempotent requests whose body was not read.
type retryTransport struct {
	base http.RoundTripper // HTTP/1.1 keep-alive
	h2c  http.RoundTripper // HTTP/2 without TLS, for apps with routing.protocol h2c
	r    *Router
}

// guardedBody records whether the body was read, and ignores Close so the
// same body can be offered to another upstream (the server closes it).
type guardedBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (g *guardedBody) Read(p []byte) (int, error) {
	g.read.Store(true)
	return g.rc.Read(p)
}
func (g *guardedBody) Close() error { return nil }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// pick chooses among available upstreams not yet tried of the side sd
// the request was assigned, then of the other side (a canary without an
// upstream in rotation fails over to stable, and stable to the canary);
// if every untried upstream is marked down, it tries them anyway, its
// own side's first (the mark is a hint). On a retry, a side's upstreams
// on hosts no tried upstream is on come first: when a node dies, all of
// its instances fail alike, and three attempts on one dead node would
// fail the request (Envoy's previous_hosts retry predicate).
func pick(r *route, sd int, tried []*Upstream, now int64) *Upstream {
	own, other := &r.sides[sd], &r.sides[1-sd]
	if len(tried) == 0 && own.allAvailable(now) {
		return own.selector.Select(own.upstreams) // the common case, without copies
	}
	var down [2][]*Upstream
	for i, s := range [2]*side{own, other} {
		var avail, sameHost []*Upstream
		for _, u := range s.upstreams {
			switch {
			case slices.Contains(tried, u):
			case !u.availableAt(now):
				down[i] = append(down[i], u)
			case onTriedHost(u, tried):
				sameHost = append(sameHost, u)
			default:
				avail = append(avail, u)
			}
		}
		if len(avail) > 0 {
			return s.selector.Select(avail)
		}
		if len(sameHost) > 0 {
			return s.selector.Select(sameHost)
		}
	}
	for i, s := range [2]*side{own, other} {
		if len(down[i]) > 0 {
			return s.selector.Select(down[i])
		}
	}
	return nil
}

// onTriedHost reports whether u listens on the host of an upstream
// already tried.
func onTriedHost(u *Upstream, tried []*Upstream) bool {
	h := upstreamHost(u.Addr)
	for _, t := range tried {
		if upstreamHost(t.Addr) == h {
			return true
		}
	}
	return false
}

// upstreamHost is addr's host ("10.0.1.5" of "10.0.1.5:8080").
func upstreamHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := infoFrom(req.Context())
	if info == nil || info.route == nil {
		return nil, errNoUpstream
	}
	var body *guardedBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &guardedBody{rc: req.Body}
		req.Body = body
	}
	var tried []*Upstream
	var lastErr error = errNoUpstream
	for info.attempts < t.r.cfg.MaxAttempts {
		up := pick(info.route, info.side, tried, time.Now().UnixNano())
		if up == nil {
			break
		}
		tried = append(tried, up)
		info.attempts++
		info.upstream = up
		out := *req
		u := *req.URL
		u.Host = up.Addr
		out.URL = &u
		up.inflight.Add(1)
		rt := t.base
		if info.route.h2c {
			rt = t.h2c
		}
		resp, err := rt.RoundTrip(&out)
		if err == nil {
			t.observe(req, up, resp)
			resp.Body = countBody(resp.Body, up)
			if info.newClient {
				resp.Header.Add("Set-Cookie", info.route.canary.setCookie(up))
			}
			return resp, nil
		}
		up.inflight.Add(-1)
		lastErr = err
		if req.Context().Err() != nil {
			return nil, err // the client went away: not the upstream's fault
		}
		if info.body != nil {
			if cerr := info.body.failure(); cerr != nil {
				return nil, cerr // the client's body failed: not the upstream's fault
			}
		}
		if !t.r.attemptFailed(info.route, up, err, body != nil && body.read.Load(), http1.Idempotent(req)) {
			return nil, err
		}
	}
	return nil, lastErr
}

// attemptFailed takes an upstream that failed out of rotation for the
// fail window and counts it, then reports whether the request may go to
// another upstream: after a dial error (nothing was sent) for any
// request, after other errors only for an idempotent one whose body was
// not sent. Both lanes follow it.
func (r *Router) attemptFailed(rt *route, up *Upstream, err error, bodySent, idempotent bool) bool {
	up.markFailed(r.cfg.FailWindow)
	r.metrics.upstreamFailures.WithLabelValues(rt.app).Inc()
	if bodySent || !(isDialError(err) || idempotent) {
		return false
	}
	r.metrics.retries.WithLabelValues(rt.app).Inc()
	return true
}

// observe applies passive health to a response (Router.observeStatus).
func (t *retryTransport) observe(req *http.Request, up *Upstream, resp *http.Response) {
	t.r.observeStatus(up, resp.StatusCode, resp.Header.Get("Retry-After") != "", http1.Idempotent(req))
}

// countBody keeps the upstream's in-flight count until the body is closed;
// an upgraded connection's body stays an io.ReadWriteCloser.
func countBody(b io.ReadCloser, up *Upstream) io.ReadCloser {
	c := &countedBody{ReadCloser: b, up: up}
	if rw, ok := b.(io.ReadWriteCloser); ok {
		return &countedRWBody{countedBody: c, w: rw}
	}
	return c
}

type countedBody struct {
	io.ReadCloser
	up   *Upstream
	done atomic.Bool
}

func (c *countedBody) Close() error {
	if c.done.CompareAndSwap(false, true) {
		c.up.inflight.Add(-1)
	}
	return c.ReadCloser.Close()
}

type countedRWBody struct {
	*countedBody
	w io.Writer
}

func (c *countedRWBody) Write(p []byte) (int, error) { return c.w.Write(p) }
