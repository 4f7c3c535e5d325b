package router

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// h1Client is a small HTTP/1.1 keep-alive client for the common case:
// it writes the request and reads the response in the calling goroutine
// (net/http's Transport hands every request to a writer and a reader
// goroutine per connection, which dominates a proxy's CPU). Upgrades and
// "Expect: 100-continue" requests go to the fallback transport.
type h1Client struct {
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	fallback http.RoundTripper
	maxIdle  int
	timeout  time.Duration // response header timeout

	mu   sync.Mutex
	idle map[string][]*h1Conn
}

type h1Conn struct {
	c        net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
}

// staleAfter: a connection idle longer than this is checked before reuse,
// since the upstream may have closed it (servers' keep-alive timeouts go
// down to a few seconds).
const staleAfter = time.Second

func (h *h1Client) get(ctx context.Context, addr string, now time.Time) (*h1Conn, bool, error) {
	for {
		h.mu.Lock()
		l := h.idle[addr]
		if len(l) == 0 {
			h.mu.Unlock()
			break
		}
		pc := l[len(l)-1]
		h.idle[addr] = l[:len(l)-1]
		h.mu.Unlock()
		if now.Sub(pc.lastUsed) < staleAfter {
			return pc, true, nil
		}
		pc.c.SetDeadline(time.Time{}) // an expired deadline would fail the peek
		if alive(pc.c) {
			return pc, true, nil
		}
		pc.c.Close()
	}
	c, err := h.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	rw := socketIO(c)
	return &h1Conn{c: c, br: bufio.NewReaderSize(rw, 16<<10), bw: bufio.NewWriterSize(rw, 8<<10)}, false, nil
}

func (h *h1Client) put(addr string, pc *h1Conn, now time.Time) {
	pc.lastUsed = now
	if pc.br.Buffered() > 0 {
		pc.c.Close() // the upstream sent more than the response: not reusable
		return
	}
	h.mu.Lock()
	if h.idle == nil {
		h.idle = map[string][]*h1Conn{}
	}
	if len(h.idle[addr]) < h.maxIdle {
		h.idle[addr] = append(h.idle[addr], pc)
		pc = nil
	}
	h.mu.Unlock()
	if pc != nil {
		pc.c.Close()
	}
}

// RoundTrip implements http.RoundTripper.
func (h *h1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Upgrade") != "" || req.Header.Get("Expect") != "" || req.URL.Scheme != "http" {
		return h.fallback.RoundTrip(req)
	}
	noBody := req.Body == nil || req.Body == http.NoBody
	for attempt := 0; ; attempt++ {
		pc, reused, err := h.get(req.Context(), req.URL.Host, time.Now())
		if err != nil {
			return nil, err
		}
		resp, err := h.exchange(req, pc)
		if err == nil {
			return resp, nil
		}
		pc.c.Close()
		if reused && noBody && attempt == 0 && req.Context().Err() == nil && resendable(idempotent(req), err) {
			continue
		}
		return nil, err
	}
}

func (h *h1Client) exchange(req *http.Request, pc *h1Conn) (*http.Response, error) {
	ctx := req.Context()
	deadline := time.Now().Add(h.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	pc.c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { pc.c.SetDeadline(time.Unix(1, 0)) })
	if err := req.Write(pc.bw); err != nil {
		stop()
		return nil, notSentError{err}
	}
	if err := pc.bw.Flush(); err != nil {
		stop()
		return nil, notSentError{err}
	}
	resp, err := http.ReadResponse(pc.br, req)
	if err != nil {
		stop()
		return nil, err
	}
	pc.c.SetDeadline(time.Time{})
	reuse := !resp.Close && !req.Close && resp.ProtoAtLeast(1, 1)
	addr := req.URL.Host
	release := func(ok bool) {
		stop()
		if ok && reuse {
			h.put(addr, pc, time.Now())
		} else {
			pc.c.Close()
		}
	}
	if resp.Body == http.NoBody || resp.ContentLength == 0 && resp.Body != nil && req.Method == http.MethodHead {
		release(true)
		return resp, nil
	}
	resp.Body = &h1Body{rc: resp.Body, release: release}
	return resp, nil
}

// notSentError is a failure to write a request: the upstream did not get
// it.
type notSentError struct{ error }

func (e notSentError) Unwrap() error { return e.error }

// resendable reports whether a request without a body that failed on a
// kept-alive connection (which the upstream may have closed meanwhile)
// may be sent again on a fresh one: if it was never written, or if it is
// idempotent. A POST the upstream may have acted on is not sent twice
// (net/http's rule too).
func resendable(idempotent bool, err error) bool {
	var ns notSentError
	return idempotent || errors.As(err, &ns)
}

// h1Body returns the connection to the pool once the body was read to the
// end, and closes it if the body is closed early.
type h1Body struct {
	rc      io.ReadCloser
	release func(reuse bool)
	once    sync.Once
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if errors.Is(err, io.EOF) {
		b.once.Do(func() { b.release(true) })
	} else if err != nil {
		b.once.Do(func() { b.release(false) })
	}
	return n, err
}

func (b *h1Body) Close() error {
	err := b.rc.Close()
	b.once.Do(func() { b.release(false) })
	return err
}

// alive peeks at an idle connection without blocking: a closed one reads
// EOF, a live one has nothing to read.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	live := false
	var buf [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		live = n < 0 && errors.Is(err, syscall.EAGAIN) // nothing to read: open; EOF or stray data: not reusable
		return true
	})
	return live
}
