package router

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/http1"
)

// The fast lane serves HTTP/1.1 keep-alive requests, plain and over TLS,
// for apps with live instances: it parses the head in place
// (internal/http1), writes the outbound head with the forwarded headers
// into the upstream connection, and copies the response back, in the
// connection's goroutine and without allocating per request. Everything
// else is handed to net/http (server.go).

// laneBufSize is the lane's read buffer: a request head that does not
// fit goes to net/http (which applies MaxHeaderBytes).
const laneBufSize = 8 << 10

var (
	laneReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, laneBufSize) }}
	laneWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8<<10) }}
)

// Connection states, for Shutdown.
const (
	laneIdle int32 = iota
	laneActive
	laneClosed
)

// laneConn is one client connection on the fast lane.
type laneConn struct {
	http1.ClientConn
	s       *Server
	r       *Router
	state   atomic.Int32
	client  string    // client IP ("" if unknown)
	trusted bool      // the client is a trusted proxy
	tls     bool      // the connection is TLS (NC is a *tls.Conn)
	raw     net.Conn  // the socket, which Shutdown and Close close (NC itself for plain HTTP)
	out     []byte    // outbound request head, rebuilt per request
	lastEnd time.Time // when the last request ended

	// the route of the last Host looked up, in the table it was found in
	lastTable *Table
	lastHost  []byte
	lastRoute *route
}

// newLaneConn starts serving c, read and written through rw (the socket
// itself for plain HTTP, the *tls.Conn for TLS).
func newLaneConn(s *Server, c net.Conn, rw io.ReadWriter, tls bool) *laneConn {
	br := laneReaders.Get().(*bufio.Reader)
	br.Reset(rw)
	bw := laneWriters.Get().(*bufio.Writer)
	bw.Reset(rw)
	lc := &laneConn{ClientConn: http1.ClientConn{NC: c, BR: br, BW: bw, BodyTimeout: s.Router.cfg.BodyTimeout,
		Closing: s.closing.Load}, s: s, r: s.Router, tls: tls}
	ip := remoteIP(c.RemoteAddr().String())
	if ip.IsValid() {
		lc.client = ip.String()
	}
	lc.trusted = lc.r.trusted(ip)
	return lc
}

func (lc *laneConn) releaseWriter() {
	lc.BW.Reset(nil)
	laneWriters.Put(lc.BW)
}

func (lc *laneConn) release() {
	lc.releaseWriter()
	lc.BR.Reset(nil)
	laneReaders.Put(lc.BR)
}

func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// run serves requests until the connection closes or goes to net/http
// (handed is true then: the caller gives it over, unflushed bytes
// written).
func (lc *laneConn) run() (handed bool) {
	cfg := &lc.r.cfg
	for {
		if lc.BR.Buffered() == 0 {
			if lc.BW.Flush() != nil {
				return false
			}
			lc.idleDeadline(cfg.IdleTimeout)
			if _, err := lc.BR.Peek(1); err != nil {
				return false
			}
		}
		if !lc.state.CompareAndSwap(laneIdle, laneActive) {
			return false // shut down while idle
		}
		var h http1.RequestHead
		err := lc.readHead(&h, cfg.ReadHeaderTimeout)
		switch {
		case errors.Is(err, http1.ErrUnsupported) || err == nil && !lc.serve(&h):
			lc.r.metrics.handoffs.Inc()
			return lc.BW.Flush() == nil
		case err != nil:
			return false
		}
		// A request whose body was not read to its end, or that broke
		// off, ends the connection: the rest is never read as a request.
		if !lc.KeepAlive() || !lc.state.CompareAndSwap(laneActive, laneIdle) {
			lc.BW.Flush()
			return false
		}
	}
}

// idleDeadline makes sure the connection is closed after being idle for
// between idle and 1.5×idle (never sooner).
func (lc *laneConn) idleDeadline(idle time.Duration) {
	if idle <= 0 {
		lc.SetReadDeadline(time.Time{})
		return
	}
	now := lc.lastEnd // a request just ended: no need to read the clock again
	if now.IsZero() {
		now = time.Now()
	}
	// Moved when less than idle is left, or more than 1.5×idle (a body
	// timeout longer than that left its deadline).
	if d := lc.ReadDeadline(); d.IsZero() || d.Sub(now) < idle || d.Sub(now) > idle+idle/2 {
		lc.SetReadDeadline(now.Add(idle + idle/2))
	}
}

// readHead reads until the end of a request head, which stays in the
// buffer (a handoff replays it).
func (lc *laneConn) readHead(h *http1.RequestHead, timeout time.Duration) error {
	if b, _ := lc.BR.Peek(1); len(b) == 1 && (b[0] < 'A' || b[0] > 'Z') {
		return http1.ErrUnsupported // not a method the lane knows (a TLS hello, an empty line)
	}
	timed := false
	head, err := http1.PeekHead(lc.BR, func() error {
		if timed {
			return nil
		}
		timed = true
		if lc.BW.Flush() != nil {
			return net.ErrClosed
		}
		lc.SetReadDeadline(deadline(timeout))
		return nil
	})
	switch {
	case errors.Is(err, http1.ErrHeadTooBig):
		return http1.ErrUnsupported // net/http applies MaxHeaderBytes
	case err != nil:
		return err
	case len(head) > lc.r.cfg.MaxHeaderBytes:
		return http1.ErrUnsupported // a limit below the lane's buffer: net/http's to apply too
	}
	return http1.ParseRequestHead(head, h)
}

// route looks the Host up, remembering the answer for the next request
// of the connection as long as the table is the same.
func (lc *laneConn) route(host []byte) *route {
	t := lc.r.table.Load()
	if t == lc.lastTable && bytes.Equal(host, lc.lastHost) {
		return lc.lastRoute
	}
	rt := t.lookup(string(host))
	lc.lastTable, lc.lastRoute = t, rt
	lc.lastHost = append(lc.lastHost[:0], host...)
	return rt
}

// pending is what the lane keeps of a request once its head left the
// buffer.
type pending struct {
	start       time.Time
	head        bool // a HEAD request: no response body
	idempotent  bool
	clientClose bool
	accept      acceptKind
	method      string // for logs only
	path        string // for logs only
}

// serve proxies one request whose head is at the start of the buffer, or
// reports false without reading it: the request is net/http's.
func (lc *laneConn) serve(h *http1.RequestHead) bool {
	r := lc.r
	rt := lc.route(h.Host)
	if rt == nil || !lc.tls && !rt.plainServed() || rt.h2c || len(rt.upstreams) == 0 || rt.canary != nil ||
		rt.maxConns > 0 && rt.stats.active.Load() >= rt.maxConns || r.acmeChallengePath(h.Target) {
		return false // pages, redirects, wakes, limits, canaries' cookies and ACME challenges are net/http's
	}
	r.metrics.laneRequests.Inc()
	if lc.tls {
		r.metrics.laneTLSRequests.Inc()
	}
	start := time.Now()
	if ms := start.UnixMilli(); rt.stats.lastAccess.Load() != ms {
		rt.stats.lastAccess.Store(ms) // a write only when it changes: the routers' cores share it
	}
	rt.stats.active.Add(1)
	defer rt.stats.active.Add(-1)

	p := pending{start: start, head: string(h.Method) == http.MethodHead, idempotent: h.Idempotent,
		clientClose: h.Close, accept: acceptOf(h.Accept)}
	if r.logRequests {
		p.method = string(h.Method)
		raw, _, _ := bytes.Cut(h.Target, []byte("?"))
		var err error
		if p.path, err = url.PathUnescape(string(raw)); err != nil {
			p.path = string(raw)
		}
	}
	lc.out = appendOutbound(lc.out[:0], h, lc.client, lc.trusted, lc.tls, r.cfg.AllowUnderscoreHeaders)
	lc.Begin(h) // h is not valid from here on
	req := http1.Request{Head: lc.out, HeadMethod: p.head, Close: p.clientClose,
		Start: start, ResponseHeaderTimeout: r.cfg.ResponseHeaderTimeout, HSTS: lc.hsts(rt)}

	var triedBuf [4]*Upstream
	tried := triedBuf[:0]
	var up *Upstream
	res := http1.Result{Err: errNoUpstream}
	for len(tried) < r.cfg.MaxAttempts {
		if up = pick(rt, sideStable, tried, start.UnixNano()); up == nil {
			break
		}
		tried = append(tried, up)
		if len(tried) > 1 {
			req.Start = time.Now() // each attempt has the whole response header timeout
		}
		up.inflight.Add(1)
		res = lc.exchange(up, &req, p.idempotent)
		up.inflight.Add(-1)
		if res.Status != 0 {
			r.observeStatus(up, res.Status, res.RetryAfter, p.idempotent)
		}
		if res.Err == nil || res.Status != 0 || isClientError(res.Err) {
			break
		}
		if !r.attemptFailed(rt, up, res.Err, res.BodySent, p.idempotent) {
			break
		}
	}
	status := res.Status
	switch {
	case status != 0:
	case isClientError(res.Err):
		status = lc.clientError(rt, res.Err, &p)
	default:
		status = lc.badGateway(rt, &p, res.Err)
	}
	lc.lastEnd = time.Now()
	rt.stats.observe(r.metrics, rt.app, status, lc.lastEnd.Sub(start))
	if len(tried) > 0 {
		r.observeGen(tried[len(tried)-1], status)
	}
	if r.logRequests {
		lc.logRequest(rt, &p, status, up, len(tried), start)
	}
	if p.clientClose {
		lc.EndAfterResponse()
	}
	return true
}

// exchange forwards the request to up on a pooled connection. A
// kept-alive connection the upstream had closed is replaced once, for
// requests without a body that were not written or are idempotent
// (resendable).
func (lc *laneConn) exchange(up *Upstream, req *http1.Request, idempotent bool) http1.Result {
	pool := lc.r.pool
	for attempt := 0; ; attempt++ {
		uc, reused, err := pool.Get(context.Background(), up.Addr)
		if err != nil {
			return http1.Result{Err: err}
		}
		res := http1.Forward(&lc.ClientConn, uc, req)
		pool.Put(up.Addr, uc)
		if res.Err != nil && res.Status == 0 && !res.BodySent && reused && attempt == 0 &&
			!isClientError(res.Err) && !isTimeout(res.Err) && http1.Resendable(idempotent, res.Err) {
			continue
		}
		return res
	}
}

// observeStatus applies passive health to a response: a 5xx to an
// idempotent request marks the upstream down, except a 503 with
// Retry-After (maintenance, not death); anything else marks it healthy.
func (r *Router) observeStatus(up *Upstream, status int, retryAfter, idempotent bool) {
	switch {
	case status >= 500 && idempotent && !(status == http.StatusServiceUnavailable && retryAfter):
		up.markFailed(r.cfg.FailWindow)
	case status < 500:
		up.markHealthy()
	}
}

// badGateway answers with the 502 (or 504) page when no upstream gave a
// response, and returns the status.
func (lc *laneConn) badGateway(rt *route, p *pending, err error) int {
	var pw pageWriter
	status := lc.r.badGateway(&pw, p.accept, string(lc.lastHost), rt.app, err)
	if v := lc.hsts(rt); v != "" {
		pw.Header().Set(hstsHeader, v)
	}
	lc.WritePage(status, pw.Header(), pw.body.Bytes(), p.head, p.clientClose)
	return status
}

// hsts is the Strict-Transport-Security value of the lane's answers for
// rt: the app's routing.hsts over TLS, none on plain HTTP (as ServeHTTP).
func (lc *laneConn) hsts(rt *route) string {
	if lc.tls {
		return rt.hstsHdr
	}
	return ""
}

// clientError answers a request the client failed (408 after a stalled
// body, 400 for one cut short; 499, nothing written, when it went away)
// and returns the status; the connection closes after it.
func (lc *laneConn) clientError(rt *route, err error, p *pending) int {
	status := clientErrorStatus(err)
	if status != statusClientGone {
		hdr := http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
		if v := lc.hsts(rt); v != "" {
			hdr.Set(hstsHeader, v)
		}
		lc.WritePage(status, hdr, []byte(http.StatusText(status)+"\n"), p.head, true)
	}
	return status
}

func (lc *laneConn) logRequest(rt *route, p *pending, status int, up *Upstream, attempts int, start time.Time) {
	fields := logrus.Fields{"host": string(lc.lastHost), "app": rt.app, "method": p.method, "path": p.path,
		"status": status, "duration_ms": time.Since(start).Milliseconds(), "attempts": attempts}
	if up != nil {
		fields["upstream"] = up.Addr
	}
	lc.r.logRequest(fields)
}

// pageWriter holds a page the lane writes itself.
type pageWriter struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (w *pageWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *pageWriter) WriteHeader(code int)        { w.status = code }
func (w *pageWriter) Write(b []byte) (int, error) { return w.body.Write(b) }
