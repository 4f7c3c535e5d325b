package router

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// The fast lane serves plain HTTP/1.1 keep-alive requests for apps with
// live instances: it parses the head in place (h1parse.go), writes the
// outbound head with the forwarded headers into the upstream connection,
// and copies the response back, in the connection's goroutine and
// without allocating per request. Everything else is handed to net/http
// (server.go).

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
	s       *Server
	r       *Router
	c       net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	state   atomic.Int32
	client  string // client IP ("" if unknown)
	trusted bool   // the client is a trusted proxy
	out     []byte // outbound request head, rebuilt per request
	// readDeadline is the read deadline last set on c (zero: none);
	// setting one costs clock reads and a timer update, so the idle
	// deadline is only moved when less than the idle timeout is left.
	readDeadline time.Time
	lastEnd      time.Time // when the last request ended

	// the route of the last Host looked up, in the table it was found in
	lastTable *Table
	lastHost  []byte
	lastRoute *route
}

func newLaneConn(s *Server, c net.Conn) *laneConn {
	rw := socketIO(c)
	br := laneReaders.Get().(*bufio.Reader)
	br.Reset(rw)
	bw := laneWriters.Get().(*bufio.Writer)
	bw.Reset(rw)
	lc := &laneConn{s: s, r: s.Router, c: c, br: br, bw: bw}
	ip := remoteIP(c.RemoteAddr().String())
	if ip.IsValid() {
		lc.client = ip.String()
	}
	lc.trusted = lc.r.trusted(ip)
	return lc
}

func (lc *laneConn) releaseWriter() {
	lc.bw.Reset(nil)
	laneWriters.Put(lc.bw)
}

func (lc *laneConn) release() {
	lc.releaseWriter()
	lc.br.Reset(nil)
	laneReaders.Put(lc.br)
}

// laneResult is what happens to the connection after a request.
type laneResult int

const (
	laneKeep laneResult = iota
	laneClose
	laneHandoff
)

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
	hs := lc.s.HTTP
	idle := hs.IdleTimeout
	if idle == 0 {
		idle = hs.ReadTimeout
	}
	for {
		if lc.br.Buffered() == 0 {
			if lc.bw.Flush() != nil {
				return false
			}
			lc.idleDeadline(idle)
			if _, err := lc.br.Peek(1); err != nil {
				return false
			}
		}
		if !lc.state.CompareAndSwap(laneIdle, laneActive) {
			return false // shut down while idle
		}
		var h reqHead
		err := lc.readHead(&h, hs.ReadHeaderTimeout)
		res := laneHandoff
		switch {
		case errors.Is(err, errHandoff):
		case err != nil:
			return false
		default:
			res = lc.serve(&h)
		}
		switch res {
		case laneHandoff:
			lc.r.metrics.handoffs.Inc()
			return lc.bw.Flush() == nil
		case laneClose:
			lc.bw.Flush()
			return false
		}
		if !lc.state.CompareAndSwap(laneActive, laneIdle) || lc.s.closing.Load() {
			lc.bw.Flush()
			return false
		}
	}
}

// idleDeadline makes sure the connection is closed after being idle for
// between idle and 1.5×idle (never sooner).
func (lc *laneConn) idleDeadline(idle time.Duration) {
	if idle <= 0 {
		lc.setReadDeadline(time.Time{})
		return
	}
	now := lc.lastEnd // a request just ended: no need to read the clock again
	if now.IsZero() {
		now = time.Now()
	}
	if lc.readDeadline.IsZero() || lc.readDeadline.Sub(now) < idle {
		lc.setReadDeadline(now.Add(idle + idle/2))
	}
}

func (lc *laneConn) setReadDeadline(t time.Time) {
	if !t.Equal(lc.readDeadline) {
		lc.c.SetReadDeadline(t)
		lc.readDeadline = t
	}
}

// readHead reads until the end of a request head, which stays in the
// buffer (a handoff replays it).
func (lc *laneConn) readHead(h *reqHead, timeout time.Duration) error {
	if b, _ := lc.br.Peek(1); len(b) == 1 && (b[0] < 'A' || b[0] > 'Z') {
		return errHandoff // not a method the lane knows (a TLS hello, an empty line)
	}
	timed := false
	head, err := peekHead(lc.br, func() error {
		if timed {
			return nil
		}
		timed = true
		if lc.bw.Flush() != nil {
			return net.ErrClosed
		}
		lc.setReadDeadline(deadline(timeout))
		return nil
	})
	switch {
	case errors.Is(err, errHeadTooBig):
		return errHandoff // net/http applies MaxHeaderBytes
	case err != nil:
		return err
	case lc.s.HTTP.MaxHeaderBytes > 0 && len(head) > lc.s.HTTP.MaxHeaderBytes:
		return errHandoff // a limit below the lane's buffer: net/http's to apply too
	}
	return parseRequestHead(head, h)
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
	bodyLen     int64
	bodySent    bool
	head        bool // a HEAD request: no response body
	idempotent  bool
	clientClose bool
	accept      acceptKind
	method      string // for logs only
	path        string // for logs only
}

// serve proxies one request whose head is at the start of the buffer.
func (lc *laneConn) serve(h *reqHead) laneResult {
	r := lc.r
	rt := lc.route(h.host)
	if rt == nil || rt.httpsRedirect || rt.h2c || len(rt.upstreams) == 0 ||
		rt.maxConns > 0 && rt.stats.active.Load() >= rt.maxConns {
		return laneHandoff // pages, redirects, wakes and limits are net/http's
	}
	r.metrics.laneRequests.Inc()
	start := time.Now()
	if ms := start.UnixMilli(); rt.stats.lastAccess.Load() != ms {
		rt.stats.lastAccess.Store(ms) // a write only when it changes: the routers' cores share it
	}
	rt.stats.active.Add(1)
	defer rt.stats.active.Add(-1)

	p := pending{start: start, bodyLen: h.contentLength, head: string(h.method) == http.MethodHead, idempotent: h.idempotent,
		clientClose: h.close, accept: h.accept}
	if r.logRequests {
		p.method = string(h.method)
		raw, _, _ := bytes.Cut(h.target, []byte("?"))
		var err error
		if p.path, err = url.PathUnescape(string(raw)); err != nil {
			p.path = string(raw)
		}
	}
	lc.buildOutbound(h)
	lc.br.Discard(len(h.raw)) // h is not valid from here on

	var triedBuf [4]*Upstream
	tried := triedBuf[:0]
	var up *Upstream
	var o outcome
	o.err = errNoUpstream
	for len(tried) < r.cfg.MaxAttempts {
		if up = pick(rt, tried, start.UnixNano()); up == nil {
			break
		}
		tried = append(tried, up)
		up.inflight.Add(1)
		o = lc.exchange(up, &p)
		up.inflight.Add(-1)
		if o.err == nil || o.clientGone {
			break
		}
		if !r.attemptFailed(rt, up, o.err, p.bodySent, p.idempotent) {
			break
		}
	}
	res := laneKeep
	switch {
	case o.clientGone:
		res, o.status = laneClose, 499
	case o.err != nil && o.status == 0:
		o.status = lc.badGateway(rt, &p, o.err)
	case o.err != nil || !o.keep:
		res = laneClose // the response broke off: the client sees it end early
	}
	if p.clientClose {
		res = laneClose
	}
	lc.lastEnd = time.Now()
	rt.stats.observe(r.metrics, rt.app, o.status, lc.lastEnd.Sub(start))
	if r.logRequests {
		lc.logRequest(rt, &p, o.status, up, len(tried), start)
	}
	return res
}

// buildOutbound writes the outbound head: the request line and headers
// as received, minus hop-by-hop and forwarding headers, plus
// X-Forwarded-For, -Host, -Proto and X-Real-IP (kept from trusted proxies
// only), as the net/http lane's rewrite does.
func (lc *laneConn) buildOutbound(h *reqHead) {
	raw := h.raw
	line, rest, _ := bytes.Cut(raw, []byte("\r\n"))
	out := append(lc.out[:0], line...)
	out = append(out, "\r\n"...)
	for {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if len(line) == 0 {
			break
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		switch headerKind(name) {
		case hConnection, hHopByHop, hTrailer, hXFF, hXFH, hXFP, hXRI, hForwarded:
			continue
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
	}
	if lc.client != "" {
		out = append(out, "X-Forwarded-For: "...)
		if lc.trusted && len(h.xff) > 0 {
			out = append(append(out, h.xff...), ", "...)
		}
		out = append(append(out, lc.client...), "\r\n"...)
	}
	out = append(append(append(out, "X-Forwarded-Host: "...), h.host...), "\r\n"...)
	proto := []byte("http")
	if lc.trusted && (string(h.xfp) == "http" || string(h.xfp) == "https") {
		proto = h.xfp
	}
	out = append(append(append(out, "X-Forwarded-Proto: "...), proto...), "\r\n"...)
	if lc.client != "" {
		real := []byte(lc.client)
		if lc.trusted && len(h.xri) > 0 {
			real = h.xri
		}
		out = append(append(append(out, "X-Real-IP: "...), real...), "\r\n"...)
	}
	lc.out = append(out, "\r\n"...)
}

// outcome is how one exchange with an upstream went.
type outcome struct {
	status     int   // status sent to the client (0: nothing sent)
	keep       bool  // the client connection can serve another request
	err        error // the upstream failed (before a response if status is 0)
	clientGone bool  // the client went away: nobody to answer
}

// exchange sends the request to up and copies the response to the
// client. A kept-alive connection the upstream had closed is replaced
// once, for requests without a body that were not written or are
// idempotent (resendable).
func (lc *laneConn) exchange(up *Upstream, p *pending) outcome {
	pool := lc.r.pool
	for attempt := 0; ; attempt++ {
		pc, reused, err := pool.get(context.Background(), up.Addr, p.start)
		if err != nil {
			return outcome{err: err}
		}
		o, reusable := lc.exchangeOn(pc, up, p)
		if reusable {
			pool.put(up.Addr, pc, p.start)
		} else {
			pc.c.Close()
		}
		if o.err != nil && o.status == 0 && !o.clientGone && reused && attempt == 0 && p.bodyLen == 0 &&
			!isTimeout(o.err) && resendable(p.idempotent, o.err) {
			continue
		}
		return o
	}
}

// exchangeOn does the exchange on one upstream connection and reports
// whether the connection can be reused.
func (lc *laneConn) exchangeOn(pc *h1Conn, up *Upstream, p *pending) (outcome, bool) {
	r := lc.r
	// The response header timeout; a request body's writes are bounded
	// too. Clearing it again costs as much, so it stays unless a body
	// remains to be streamed (the next use sets a new one).
	if p.bodyLen > 0 {
		pc.c.SetDeadline(p.start.Add(r.pool.timeout))
	} else {
		pc.c.SetReadDeadline(p.start.Add(r.pool.timeout))
	}
	pc.bw.Write(lc.out)
	if p.bodyLen > 0 {
		p.bodySent = true
		if int64(lc.br.Buffered()) < p.bodyLen {
			lc.setReadDeadline(deadline(lc.s.HTTP.ReadTimeout)) // as net/http: none by default
		}
		if rerr, werr := copyN(pc.bw, lc.br, p.bodyLen); rerr != nil || werr != nil {
			return outcome{err: cmp.Or(rerr, werr), clientGone: rerr != nil}, false
		}
	}
	if err := pc.bw.Flush(); err != nil {
		return outcome{err: notSentError{err}}, false
	}
	var rh respHead
	for {
		if err := readResponseHead(pc.br, &rh); err != nil {
			return outcome{err: err}, false
		}
		if rh.status >= 200 {
			break
		}
		if rh.status == http.StatusSwitchingProtocols {
			return outcome{err: errBadUpstream}, false // nobody asked to upgrade
		}
		lc.writeResponseHead(&rh, p, true) // 103 Early Hints and the like
		pc.br.Discard(len(rh.raw))
		if lc.bw.Flush() != nil {
			return outcome{clientGone: true, err: net.ErrClosed}, false
		}
	}
	noBody := p.head || rh.status == http.StatusNoContent || rh.status == http.StatusNotModified
	if p.bodyLen > 0 || !noBody && (rh.contentLength < 0 || int64(pc.br.Buffered()-len(rh.raw)) < rh.contentLength) {
		pc.c.SetDeadline(time.Time{})
	}
	r.observeStatus(up, rh.status, rh.retryAfter, p.idempotent)
	lc.writeResponseHead(&rh, p, noBody)
	pc.br.Discard(len(rh.raw))
	o := outcome{status: rh.status, keep: true}
	reusable := !rh.close
	var rerr, werr error
	switch {
	case noBody:
		if p.head && rh.chunked {
			reusable = false // some servers send a body anyway; do not trust the connection
		}
	case rh.chunked:
		rerr, werr = copyChunked(lc.bw, pc.br)
	case rh.contentLength >= 0:
		rerr, werr = copyN(lc.bw, pc.br, rh.contentLength)
	default: // delimited by the upstream closing: chunked to the client
		reusable = false
		rerr, werr = rechunk(lc.bw, pc.br)
	}
	if rerr != nil || werr != nil {
		o.err, o.clientGone = cmp.Or(rerr, werr), werr != nil
		return o, false
	}
	if lc.br.Buffered() == 0 && lc.bw.Flush() != nil {
		o.keep = false
	}
	return o, reusable
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

// readResponseHead reads until the end of a response head, which stays
// in br.
func readResponseHead(br *bufio.Reader, h *respHead) error {
	head, err := peekHead(br, nil)
	switch {
	case errors.Is(err, errHeadTooBig):
		return errBadUpstream
	case err != nil:
		return err
	}
	return parseResponseHead(head, h)
}

// writeResponseHead writes the status line and the end-to-end headers,
// framing the body for the client: chunked when the upstream chunks it or
// ends it by closing.
func (lc *laneConn) writeResponseHead(rh *respHead, p *pending, noBody bool) {
	bw := lc.bw
	bw.WriteString("HTTP/1.1 ")
	bw.Write(rh.statusText)
	bw.WriteString("\r\n")
	_, rest, _ := bytes.Cut(rh.raw, []byte("\r\n"))
	for {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if len(line) == 0 {
			break
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		switch headerKind(name) {
		case hConnection, hHopByHop, hTE, hUpgrade, hTransferEncoding:
			continue
		case hContentLength:
			if rh.chunked {
				continue
			}
		}
		if rh.ndropped > 0 && rh.droppedByConnection(name) {
			continue
		}
		bw.Write(line)
		bw.WriteString("\r\n")
	}
	if rh.status >= 200 && !noBody && rh.contentLength < 0 {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if rh.status >= 200 && (p.clientClose || lc.s.closing.Load()) {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

// badGateway answers with the 502 (or 504) page when no upstream gave a
// response, and returns the status.
func (lc *laneConn) badGateway(rt *route, p *pending, err error) int {
	var pw pageWriter
	status := lc.r.badGateway(&pw, p.accept, string(lc.lastHost), rt.app, err)
	pw.writeTo(lc.bw, p.head, p.clientClose || lc.s.closing.Load())
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

func (w *pageWriter) writeTo(bw *bufio.Writer, head, closeConn bool) {
	bw.WriteString("HTTP/1.1 " + strconv.Itoa(w.status) + " " + http.StatusText(w.status) + "\r\n")
	w.Header().Set("Content-Length", strconv.Itoa(w.body.Len()))
	if closeConn {
		w.h.Set("Connection", "close")
	}
	w.h.Write(bw)
	bw.WriteString("\r\n")
	if !head {
		bw.Write(w.body.Bytes())
	}
}
