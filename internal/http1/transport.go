package http1

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// Transport is a small HTTP/1.1 keep-alive client for the common case,
// on the Pool the lane uses: it writes the request and reads the
// response in the calling goroutine (net/http's Transport hands every
// request to a writer and a reader goroutine per connection, which
// dominates a proxy's CPU). Upgrades and "Expect: 100-continue" requests
// go to Fallback.
type Transport struct {
	Pool     *Pool
	Fallback http.RoundTripper
	// ResponseHeaderTimeout bounds waiting for the response head once the
	// request, body included, is written.
	ResponseHeaderTimeout time.Duration
	// WriteTimeout bounds each write of a request body to the upstream:
	// an upstream that stops reading fails the request.
	WriteTimeout time.Duration
}

// earlyAnswerWait is how long a failed write waits for the answer the
// upstream may have sent before it stopped reading (a 413).
const earlyAnswerWait = 250 * time.Millisecond

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Upgrade") != "" || req.Header.Get("Expect") != "" || req.URL.Scheme != "http" {
		return t.Fallback.RoundTrip(req)
	}
	noBody := req.Body == nil || req.Body == http.NoBody
	for attempt := 0; ; attempt++ {
		c, reused, err := t.Pool.Get(req.Context(), req.URL.Host)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(req, c, noBody)
		if err == nil {
			return resp, nil
		}
		c.Close()
		if reused && noBody && attempt == 0 && req.Context().Err() == nil && !isTimeout(err) && Resendable(Idempotent(req), err) {
			continue
		}
		return nil, err
	}
}

func (t *Transport) exchange(req *http.Request, c *Conn, noBody bool) (*http.Response, error) {
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	var err error
	pw := progressWriter{w: c.rw, c: c.nc, d: t.WriteTimeout}
	if noBody {
		if err = req.Write(c.bw); err == nil {
			err = c.bw.Flush()
		}
	} else {
		// Straight to the socket (c.bw is empty): Request.Write buffers
		// itself, and flushes the head before a streamed body.
		err = req.Write(&pw)
	}
	early := false
	if err != nil {
		if noBody {
			stop()
			return nil, NotSentError{err}
		}
		if pw.err == nil {
			stop()
			return nil, err // reading the client's body failed
		}
		// The upstream may have answered before it stopped reading.
		early = true
		c.setReadDeadline(time.Now().Add(earlyAnswerWait))
	} else {
		c.nc.SetWriteDeadline(time.Time{})
		c.setReadDeadline(deadlineFrom(ctx, t.ResponseHeaderTimeout))
	}
	resp, framed, rerr := readResponse(c, req)
	if rerr != nil {
		stop()
		if early {
			return nil, err
		}
		return nil, rerr
	}
	c.setReadDeadline(time.Time{})
	reuse := framed && !early && !resp.Close && !req.Close
	resp.Close = resp.Close || early
	addr := req.URL.Host
	release := func(ok bool) {
		// If the context ended meanwhile, its deadline may land on c at
		// any moment: c is not reused then.
		c.clean = stop() && ok && reuse
		t.Pool.Put(addr, c)
	}
	if resp.Body == http.NoBody {
		release(true)
		return resp, nil
	}
	resp.Body = &body{rc: resp.Body, release: release}
	return resp, nil
}

// readResponse reads the final response head, passing 1xx responses to
// the request's httptrace hook (ReverseProxy forwards them); framed is
// false for a response that must not be followed by another on c.
func readResponse(c *Conn, req *http.Request) (resp *http.Response, framed bool, err error) {
	for informational := 0; ; informational++ {
		if informational > maxInformational {
			return nil, false, ErrMalformed
		}
		head, err := PeekHead(c.br, nil)
		if err != nil {
			if errors.Is(err, ErrHeadTooBig) {
				err = ErrMalformed
			}
			return nil, false, err
		}
		var h ResponseHead
		if err := ParseResponseHead(head, &h); err != nil {
			return nil, false, err
		}
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, false, err
		}
		switch {
		case h.Status == http.StatusSwitchingProtocols:
			return nil, false, ErrMalformed // nobody asked to upgrade
		case h.Status < 200:
			for _, v := range resp.Header.Values("Connection") {
				for _, name := range strings.Split(v, ",") {
					resp.Header.Del(strings.TrimSpace(name))
				}
			}
			for _, h := range hopByHop {
				resp.Header.Del(h)
			}
			if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.Got1xxResponse != nil {
				if err := trace.Got1xxResponse(h.Status, textproto.MIMEHeader(resp.Header)); err != nil {
					return nil, false, err
				}
			}
			continue
		}
		return resp, ExactlyFramed(&h, req.Method == http.MethodHead), nil
	}
}

// maxInformational bounds the 1xx responses passed on before a final one.
const maxInformational = 8

// hopByHop are the headers that never pass a proxy.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// ExactlyFramed reports whether a response's end can be told exactly, so
// that another response may follow on its connection: it does not end
// with the connection, is not framed two ways, and has no framing header
// that contradicts a response without a body (a chunked answer to HEAD,
// a 204 with a length).
func ExactlyFramed(h *ResponseHead, head bool) bool {
	switch {
	case h.Close || h.Ambiguous:
		return false
	case h.Status == http.StatusNoContent:
		return !h.Chunked && h.ContentLength <= 0
	case head || h.Status == http.StatusNotModified:
		return !h.Chunked
	}
	return h.Chunked || h.ContentLength >= 0
}

func deadlineFrom(ctx context.Context, d time.Duration) time.Time {
	if d <= 0 {
		d = time.Hour
	}
	deadline := time.Now().Add(d)
	if cd, ok := ctx.Deadline(); ok && cd.Before(deadline) {
		deadline = cd
	}
	return deadline
}

// progressWriter moves the write deadline before each write (the
// upstream must keep reading, however long the body takes) and keeps the
// socket's write error: Request.Write reports it as the body's.
type progressWriter struct {
	w   io.Writer
	c   net.Conn
	d   time.Duration
	err error
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if p.d > 0 {
		p.c.SetWriteDeadline(time.Now().Add(p.d))
	}
	n, err := p.w.Write(b)
	if err != nil && p.err == nil {
		p.err = err
	}
	return n, err
}

// NotSentError is a failure to write a request without a body: the
// upstream did not get it.
type NotSentError struct{ error }

func (e NotSentError) Unwrap() error { return e.error }

// Resendable reports whether a request without a body that failed on a
// kept-alive connection (which the upstream may have closed meanwhile)
// may be sent again on a fresh one: if it was never written, or if it is
// idempotent. A POST the upstream may have acted on is not sent twice
// (net/http's rule too).
func Resendable(idempotent bool, err error) bool {
	var ns NotSentError
	return idempotent || errors.As(err, &ns)
}

// Idempotent reports whether a request may be sent twice: by its method,
// or because it carries an idempotency key.
func Idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// body returns the connection to the pool once the body was read to the
// end, and closes it if the body is closed early.
type body struct {
	rc      io.ReadCloser
	release func(reuse bool)
	once    sync.Once
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if errors.Is(err, io.EOF) {
		b.once.Do(func() { b.release(true) })
	} else if err != nil {
		b.once.Do(func() { b.release(false) })
	}
	return n, err
}

func (b *body) Close() error {
	err := b.rc.Close()
	b.once.Do(func() { b.release(false) })
	return err
}

// WriteBound returns a dial function whose connections bound each write
// with d (0: unbounded): for net/http's Transport (the Fallback), which
// has no write timeout of its own, so that an upstream that stops reading
// an upload ("Expect: 100-continue", h2c) fails it too.
func WriteBound(dial func(ctx context.Context, network, addr string) (net.Conn, error), d time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if d <= 0 {
		return dial
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return WriteBoundConn(c, d), nil
	}
}

// WriteBoundConn returns c with every pause in its writes bounded by d:
// each piece of at most 4 KiB (net/http's own buffer) has d to go out,
// so a peer that takes a little at a time is served and one that takes
// nothing is cut.
func WriteBoundConn(c net.Conn, d time.Duration) net.Conn {
	return &writeBoundConn{Conn: c, d: d}
}

type writeBoundConn struct {
	net.Conn
	d time.Duration
}

const writePiece = 4 << 10

func (c *writeBoundConn) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		c.SetWriteDeadline(time.Now().Add(c.d))
		m, err := c.Conn.Write(b[n:min(len(b), n+writePiece)])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// CloseWrite half-closes the connection, as on a *net.TCPConn.
func (c *writeBoundConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
