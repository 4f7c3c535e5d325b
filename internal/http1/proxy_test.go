package http1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// upstream is a raw TCP peer: each accepted connection is handed to serve.
func upstream(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return l.Addr().String()
}

func testPool(idle time.Duration) *Pool {
	return &Pool{Dial: (&net.Dialer{}).DialContext, MaxIdle: 4, IdleTimeout: idle}
}

// clientPair returns the proxy's side of a client connection and the
// client's end of it.
func clientPair(t *testing.T, bodyTimeout time.Duration) (*ClientConn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close(); nc.Close() })
	peer.SetDeadline(time.Now().Add(10 * time.Second))
	return &ClientConn{NC: nc, BR: bufio.NewReader(nc), BW: bufio.NewWriter(nc), BodyTimeout: bodyTimeout}, peer
}

// begin writes a request from the client and starts it on c.
func begin(t *testing.T, c *ClientConn, peer net.Conn, raw string) *Request {
	t.Helper()
	io.WriteString(peer, raw)
	head, err := PeekHead(c.BR, nil)
	if err != nil {
		t.Fatal(err)
	}
	var h RequestHead
	if err := ParseRequestHead(head, &h); err != nil {
		t.Fatal(err)
	}
	req := &Request{Head: append([]byte(nil), head...), HeadMethod: string(h.Method) == "HEAD", Start: time.Now(),
		ResponseHeaderTimeout: 5 * time.Second}
	c.Begin(&h)
	return req
}

// TestPoolReusesOnlyQuietConnections: a connection on which bytes
// arrived after its response, or that the upstream closed, is not
// reused, however soon it is asked for; a quiet one is.
func TestPoolReusesOnlyQuietConnections(t *testing.T) {
	send := make(chan string, 1)
	addr := upstream(t, func(c net.Conn) {
		for s := range send {
			if s == "close" {
				return
			}
			io.WriteString(c, s)
		}
	})
	p := testPool(0)
	get := func() (*Conn, bool) {
		t.Helper()
		c, reused, err := p.Get(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		return c, reused
	}
	c, _ := get()
	c.clean = true
	p.Put(addr, c)
	if c2, reused := get(); !reused || c2 != c {
		t.Fatalf("a quiet connection was not reused")
	}
	c.clean = true
	p.Put(addr, c)
	send <- "late bytes"
	time.Sleep(50 * time.Millisecond) // the bytes reach the socket
	if c2, reused := get(); reused || c2 == c {
		t.Fatalf("a connection with bytes past its response was reused")
	}
	if _, err := c.nc.Read(make([]byte, 1)); err == nil {
		t.Fatalf("the connection with late bytes is still open")
	}
}

// TestPoolPutRefusesUncleanConnections: Put closes a connection whose
// exchange did not end cleanly, or that holds unread bytes.
func TestPoolPutRefusesUncleanConnections(t *testing.T) {
	addr := upstream(t, func(c net.Conn) { io.WriteString(c, "xyz"); io.Copy(io.Discard, c) })
	p := testPool(0)
	for _, tc := range []struct {
		name  string
		clean bool
		peek  bool
	}{{"not clean", false, false}, {"bytes buffered", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := p.Get(context.Background(), addr)
			if err != nil {
				t.Fatal(err)
			}
			if tc.peek {
				c.br.Peek(1)
			}
			c.clean = tc.clean
			p.Put(addr, c)
			if n := len(p.idle[addr]); n != 0 {
				t.Fatalf("got %d idle connections, want 0", n)
			}
		})
	}
}

// TestPoolIdleTimeout: Run closes connections idle past the timeout: the
// upstream sees them end.
func TestPoolIdleTimeout(t *testing.T) {
	closed := make(chan struct{})
	addr := upstream(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
		close(closed)
	})
	p := testPool(100 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	c, _, err := p.Get(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	c.clean = true
	p.Put(addr, c)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("an idle upstream connection was not closed after the idle timeout")
	}
}

// TestForwardEarlyAnswer: an upstream that answers 413 and closes before
// reading the whole body has its answer passed on with "Connection:
// close"; the rest of the body is never read as a request.
func TestForwardEarlyAnswer(t *testing.T) {
	addr := upstream(t, func(c net.Conn) {
		io.ReadFull(c, make([]byte, 1000))
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig")
	})
	cc, peer := clientPair(t, 5*time.Second)
	p := testPool(0)
	go func() { // the client sends its whole body (the kernel buffers much of it)
		io.WriteString(peer, strings.Repeat("x", 4<<20))
	}()
	req := begin(t, cc, peer, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 8388608\r\n\r\n")
	u, _, err := p.Get(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	res := Forward(cc, u, req)
	if res.Status != 413 || res.Err != nil {
		t.Fatalf("got status %d, err %v; want the upstream's 413", res.Status, res.Err)
	}
	if cc.KeepAlive() || u.clean {
		t.Fatalf("keep-alive %v, upstream clean %v after an unread body; want both false", cc.KeepAlive(), u.clean)
	}
	cc.BW.Flush()
	br := bufio.NewReader(peer)
	head := readHead(t, br)
	if !strings.Contains(head, "Connection: close\r\n") {
		t.Fatalf("the 413 does not close the connection: %q", head)
	}
}

func readHead(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read head: %v (so far %q)", err, b.String())
		}
		b.WriteString(l)
		if l == "\r\n" {
			return b.String()
		}
	}
}

// TestForwardBodyTimeout: a body that stops arriving fails with
// ErrBodyTimeout, a ClientError; neither connection is reusable.
func TestForwardBodyTimeout(t *testing.T) {
	addr := upstream(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	cc, peer := clientPair(t, 100*time.Millisecond)
	req := begin(t, cc, peer, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
	p := testPool(0)
	u, _, err := p.Get(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	res := Forward(cc, u, req)
	var ce *ClientError
	if !errors.As(res.Err, &ce) || !errors.Is(res.Err, ErrBodyTimeout) || res.Status != 0 {
		t.Fatalf("got status %d, err %v; want a ClientError with ErrBodyTimeout", res.Status, res.Err)
	}
	if cc.KeepAlive() || u.clean {
		t.Fatalf("keep-alive %v, upstream clean %v after a stalled body; want both false", cc.KeepAlive(), u.clean)
	}
}

// TestForwardFraming: which responses leave the upstream connection
// reusable (exact framing) and the client connection kept alive.
func TestForwardFraming(t *testing.T) {
	for _, tc := range []struct {
		name, method, resp string
		clean              bool
	}{
		{"content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", true},
		{"close-delimited", "GET", "HTTP/1.1 200 OK\r\n\r\nok", false},
		{"connection close", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", false},
		{"length and chunks", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false},
		{"HEAD with length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", true},
		{"HEAD chunked", "HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", true},
		{"204 with length", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false},
		{"204 chunked", "GET", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"304 with length", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", true},
		{"HTTP/1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := upstream(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				readHead(t, br)
				io.WriteString(c, tc.resp)
				c.(*net.TCPConn).CloseWrite() // ends a close-delimited body
				io.Copy(io.Discard, br)
			})
			cc, peer := clientPair(t, time.Second)
			req := begin(t, cc, peer, tc.method+" / HTTP/1.1\r\nHost: a\r\n\r\n")
			u, _, err := testPool(0).Get(context.Background(), addr)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			res := Forward(cc, u, req)
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if u.clean != tc.clean {
				t.Fatalf("upstream connection reusable: got %v, want %v", u.clean, tc.clean)
			}
			if !cc.KeepAlive() {
				t.Fatalf("the client connection is not kept alive after a whole response")
			}
		})
	}
}

// TestPoolClosedAfterRun: once Run has ended, Put closes connections
// instead of keeping them where nothing would close them.
func TestPoolClosedAfterRun(t *testing.T) {
	closed := make(chan struct{})
	addr := upstream(t, func(c net.Conn) { io.Copy(io.Discard, c); close(closed) })
	p := testPool(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Run(ctx)
	c, _, err := p.Get(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	c.clean = true
	p.Put(addr, c)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("a connection put back after Run ended stays open")
	}
}
