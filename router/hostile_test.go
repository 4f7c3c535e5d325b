package router

// Hostile peers: raw clients that write exact bytes (with exact timing)
// and raw upstreams that log every byte they receive and answer with
// exact bytes. Each TestHostile* test holds one rule of the router's
// contract with clients and upstreams that misbehave; the helpers come
// first.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hostileUpstream is a raw HTTP/1.1 upstream. It records every byte each
// connection receives and the requests it parsed, and answers each
// request with what its script writes.
type hostileUpstream struct {
	name string
	addr string
	// script answers one request: it writes the exact response bytes to
	// c (and may read req.Body, sleep, write more later...). It returns
	// false to close the connection; otherwise the rest of the body is
	// read and the next request awaited.
	script func(c *hostileConn, req *http.Request) (keep bool)

	mu    sync.Mutex
	conns []*hostileConn
}

// hostileConn is one connection accepted by a hostileUpstream.
type hostileConn struct {
	net.Conn
	up    *hostileUpstream // the upstream that accepted it
	index int              // 0 for the upstream's first connection, and so on

	mu    sync.Mutex
	rx    []byte           // every byte received
	reqs  []hostileRequest // the requests parsed, in order
	ended chan struct{}    // closed when the peer (the router) closed the connection
	once  sync.Once
}

// hostileRequest is a request as a hostileUpstream parsed it.
type hostileRequest struct {
	Method, Target string
	Header         http.Header
}

func (r hostileRequest) String() string { return r.Method + " " + r.Target }

// echo answers with the upstream's name and the request target, keeping
// the connection.
func (c *hostileConn) echo(req *http.Request) bool {
	hostileReply(c, "200 OK", c.up.name+" "+req.RequestURI)
	return true
}

// hostileReply writes a response framed by Content-Length.
func hostileReply(w io.Writer, status, body string, headers ...string) {
	var b strings.Builder
	b.WriteString("HTTP/1.1 " + status + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	io.WriteString(w, b.String())
}

// newHostileUpstream starts an upstream named name; a nil script echoes.
func newHostileUpstream(t testing.TB, name string, script func(c *hostileConn, req *http.Request) bool) *hostileUpstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &hostileUpstream{name: name, addr: l.Addr().String(), script: script}
	if u.script == nil {
		u.script = (*hostileConn).echo
	}
	t.Cleanup(func() {
		l.Close()
		u.mu.Lock()
		defer u.mu.Unlock()
		for _, c := range u.conns {
			c.Close()
		}
	})
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			c := &hostileConn{Conn: nc, up: u, index: len(u.conns), ended: make(chan struct{})}
			u.conns = append(u.conns, c)
			u.mu.Unlock()
			go u.serve(c)
		}
	}()
	return u
}

func (u *hostileUpstream) serve(c *hostileConn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.reqs = append(c.reqs, hostileRequest{Method: req.Method, Target: req.RequestURI, Header: req.Header})
		c.mu.Unlock()
		if !u.script(c, req) {
			return
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
	}
}

// Read records what it reads, and notes the router closing the
// connection (EOF, or a reset when it closed with data unread).
func (c *hostileConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.rx = append(c.rx, p[:n]...)
	c.mu.Unlock()
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		c.once.Do(func() { close(c.ended) })
	}
	return n, err
}

// received is every byte the connection received so far.
func (c *hostileConn) received() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.rx)
}

func (c *hostileConn) requests() []hostileRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]hostileRequest(nil), c.reqs...)
}

// closedByRouter waits up to d for the router to close the connection.
func (c *hostileConn) closedByRouter(d time.Duration) bool {
	select {
	case <-c.ended:
		return true
	case <-time.After(d):
		return false
	}
}

// connections is a snapshot of the connections accepted so far.
func (u *hostileUpstream) connections() []*hostileConn {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*hostileConn(nil), u.conns...)
}

// requests is every request the upstream parsed, connection by
// connection.
func (u *hostileUpstream) requests() []hostileRequest {
	var all []hostileRequest
	for _, c := range u.connections() {
		all = append(all, c.requests()...)
	}
	return all
}

// received is every byte the upstream received, all connections
// together (each connection's bytes in one piece).
func (u *hostileUpstream) received() string {
	var b strings.Builder
	for _, c := range u.connections() {
		b.WriteString(c.received())
	}
	return b.String()
}

// waitRequest waits up to d for a request for target and returns the
// connection it came on (nil if none came).
func (u *hostileUpstream) waitRequest(target string, d time.Duration) *hostileConn {
	for end := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		for _, c := range u.connections() {
			for _, r := range c.requests() {
				if r.Target == target {
					return c
				}
			}
		}
		if time.Now().After(end) {
			return nil
		}
	}
}

// hostileLane is a way for a request to reach the upstream: the fast
// lane, or net/http, which a Connection header naming a token other than
// close and keep-alive forces (the lane leaves such requests to it).
type hostileLane struct {
	name string // subtest name
	key  string // for app names
	hdr  string // header line(s) added to every request head
}

var hostileLanes = []hostileLane{
	{name: "lane", key: "lane"},
	{name: "net/http", key: "nethttp", hdr: "Connection: keep-alive, x-hostile\r\n"},
}

// head is a request head for host with the lane's headers and extra
// header lines ("Name: value").
func (l hostileLane) head(method, target, host string, extra ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + l.hdr)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// checkLane reports an error if the requests so far did not take lane's
// path: the fast lane proxied one for "lane", net/http was handed the
// connection for "net/http".
func checkLane(t *testing.T, e *env, lane hostileLane) {
	t.Helper()
	proxied, handoffs := counterValue(t, e.r.metrics.laneRequests), counterValue(t, e.r.metrics.handoffs)
	if lane.hdr == "" && proxied == 0 || lane.hdr != "" && handoffs == 0 {
		t.Errorf("the request did not take the %s path: %v fast lane requests, %v handoffs", lane.name, proxied, handoffs)
	}
}

// hostileDial connects a raw client to the router (for t, which may be a
// subtest).
func hostileDial(t *testing.T, e *env) *client {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// readWithin reads one final response (and its body) for a request of
// method, waiting at most d; unlike read it returns errors.
func (c *client) readWithin(method string, d time.Duration) (*http.Response, string, error) {
	c.c.SetReadDeadline(time.Now().Add(d))
	defer c.c.SetReadDeadline(time.Time{})
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	for err == nil && resp.StatusCode < 200 {
		resp, err = http.ReadResponse(c.br, &http.Request{Method: method})
	}
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// want reads a response within 3s and checks its status and body (what
// names the request in messages); ok is false if none came.
func (c *client) want(t *testing.T, what, method string, status int, body string) (resp *http.Response, ok bool) {
	t.Helper()
	resp, got, err := c.readWithin(method, 3*time.Second)
	switch {
	case err != nil:
		t.Errorf("%s: got no response (%v), want %d %q", what, err, status, body)
		return nil, false
	case resp.StatusCode != status || got != body:
		t.Errorf("%s: got %d %q, want %d %q", what, resp.StatusCode, got, status, body)
	}
	return resp, true
}

// expectEOF checks that the router closes the connection within d and
// sends nothing more before it.
func (c *client) expectEOF(t *testing.T, d time.Duration) {
	t.Helper()
	c.c.SetReadDeadline(time.Now().Add(d))
	defer c.c.SetReadDeadline(time.Time{})
	buf := make([]byte, 512)
	n, err := c.br.Read(buf)
	var ne net.Error
	switch {
	case n > 0:
		t.Errorf("got %q after the response, want EOF", clip(buf[:n]))
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
	case errors.As(err, &ne) && ne.Timeout():
		t.Errorf("connection still open %v after the response, want EOF", d)
	default:
		t.Errorf("got %v after the response, want EOF", err)
	}
}

// clip shortens what a failure message quotes.
func clip(b []byte) string {
	if len(b) > 120 {
		return string(b[:120]) + "..."
	}
	return string(b)
}

// expectSilence checks that nothing arrives on an idle connection for d
// (the router may close it).
func (c *client) expectSilence(t *testing.T, d time.Duration) {
	t.Helper()
	c.c.SetReadDeadline(time.Now().Add(d))
	defer c.c.SetReadDeadline(time.Time{})
	buf := make([]byte, 512)
	if n, _ := c.br.Read(buf); n > 0 {
		t.Errorf("got %q on an idle connection, want nothing", clip(buf[:n]))
	}
}

// TestHostileUpstreamHelper checks the raw upstream itself against
// net/http's client: requests and bytes are recorded per connection, a
// kept-alive connection serves several requests, and the client closing
// it is seen.
func TestHostileUpstreamHelper(t *testing.T) {
	u := newHostileUpstream(t, "up", nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	for _, p := range []string{"/one", "/two?x=1"} {
		resp, err := cl.Post("http://"+u.addr+p, "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "up "+p {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, b, "up "+p)
		}
	}
	conns := u.connections()
	if len(conns) != 1 {
		t.Fatalf("got %d connections, want 1 kept alive", len(conns))
	}
	if got := fmt.Sprint(u.requests()); got != "[POST /one POST /two?x=1]" {
		t.Fatalf("got requests %s, want [POST /one POST /two?x=1]", got)
	}
	if rx := conns[0].received(); strings.Count(rx, "\r\n\r\nhello") != 2 || !strings.HasPrefix(rx, "POST /one HTTP/1.1\r\n") {
		t.Fatalf("got bytes %q, want both requests with their bodies", rx)
	}
	tr.CloseIdleConnections()
	if !conns[0].closedByRouter(2 * time.Second) {
		t.Fatal("the client closed its connection; the upstream did not see it")
	}
}

// hostileWeb starts a router with cfg whose app "web" (web.example.com)
// has one instance: a hostile upstream named "up" answering with script
// (nil: echo).
func hostileWeb(t *testing.T, cfg Config, script func(c *hostileConn, req *http.Request) bool) (*env, *hostileUpstream) {
	t.Helper()
	e := newEnv(t, cfg)
	up := newHostileUpstream(t, "up", script)
	e.instance("web", "1", up.addr)
	return e, up
}

// smuggledUnit is a request to hide in a request body, padded to 64
// bytes: bodies are sent in writes of 64 of them, and the router reads
// into buffers whose sizes are powers of two, so wherever a router
// stops reading a body, if it parses what follows as requests, it parses
// whole ones.
const smuggledUnit = "GET /smuggled HTTP/1.1\r\nHost: web.example.com\r\nX: 0123456789\r\n\r\n"

// smugglingPieces returns n bytes of body (n a multiple of 4096) made of
// smuggled requests, in 4096-byte writes.
func smugglingPieces(t *testing.T, n int) []string {
	t.Helper()
	if len(smuggledUnit) != 64 || n%4096 != 0 {
		t.Fatalf("smuggled request of %d bytes, body of %d: want 64 and a multiple of 4096", len(smuggledUnit), n)
	}
	pieces := make([]string, n/4096)
	for i := range pieces {
		pieces[i] = strings.Repeat(smuggledUnit, 64)
	}
	return pieces
}

// sendPieces writes pieces to c in the background, pause apart, until
// one fails (the router may have closed the connection); the channel
// closes when it is done.
func sendPieces(c net.Conn, pieces []string, pause time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		for _, p := range pieces {
			time.Sleep(pause)
			if _, err := io.WriteString(c, p); err != nil {
				return
			}
		}
	}()
	return done
}

// smuggledRequests lists the requests for /smuggled the upstream parsed.
func smuggledRequests(up *hostileUpstream) []hostileRequest {
	var got []hostileRequest
	for _, r := range up.requests() {
		if r.Target == "/smuggled" {
			got = append(got, r)
		}
	}
	return got
}

// TestHostileBodyDesync: a request body is never parsed as requests.
//
// Early response: an upstream that answers a large upload early (413,
// after reading 1000 of 100000 bytes) and closes; the client keeps
// sending the body, which holds requests for /smuggled. The client gets
// the upstream's 413 (a 502 would do only if no response had come) with
// Connection: close, then EOF; no upstream connection ever receives the
// smuggled bytes.
//
// Slow upload: the response header timeout counts from the end of the
// request body, as in net/http's Transport: an upload slower than it
// that keeps making progress reaches the upstream whole and gets its
// 200. An upload that stalls longer than it either completes the same
// way or gets an error response with Connection: close and then EOF; the
// rest of its body is never parsed as a request.
func TestHostileBodyDesync(t *testing.T) {
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			t.Run("early response", func(t *testing.T) {
				t.Parallel()
				answered := make(chan struct{})
				e, up := hostileWeb(t, Config{}, func(c *hostileConn, req *http.Request) bool {
					if req.URL.Path != "/upload" {
						return c.echo(req)
					}
					io.ReadFull(req.Body, make([]byte, 1000))
					hostileReply(c, "413 Payload Too Large", "too large", "Connection: close")
					close(answered)
					return false
				})
				pieces := smugglingPieces(t, 21*4096)
				filler := 100000 - 21*4096 // more than the router's buffers: it must send some on
				c := hostileDial(t, e)
				c.send(lane.head("POST", "/upload", "web.example.com", "Content-Length: 100000") + strings.Repeat("a", filler))
				select {
				case <-answered:
				case <-time.After(3 * time.Second):
					t.Fatalf("the upstream got no upload within 3s (it got %q)", up.received())
				}
				time.Sleep(50 * time.Millisecond) // the upstream closes
				checkLane(t, e, lane)
				sent := sendPieces(c.c, pieces, 5*time.Millisecond)
				resp, body, err := c.readWithin("POST", 3*time.Second)
				switch {
				case err != nil:
					t.Errorf("got no response (%v), want the upstream's 413", err)
				case resp.StatusCode != http.StatusRequestEntityTooLarge || body != "too large":
					t.Errorf("got %d %q, want the upstream's 413 %q", resp.StatusCode, body, "too large")
				}
				if err == nil {
					if !resp.Close {
						t.Errorf("got %d without Connection: close, want Connection: close (the body was not read)", resp.StatusCode)
					}
					c.expectEOF(t, 2*time.Second)
				}
				<-sent
				if rx := up.received(); strings.Contains(rx, "/smuggled") {
					t.Errorf("the upstream received the requests hidden in the body: %d requests for /smuggled", strings.Count(rx, "GET /smuggled"))
				}
			})
			t.Run("slow upload", func(t *testing.T) {
				t.Parallel()
				e, _ := hostileWeb(t, Config{ResponseHeaderTimeout: 200 * time.Millisecond}, func(c *hostileConn, req *http.Request) bool {
					n, err := io.Copy(io.Discard, req.Body)
					if err != nil {
						return false
					}
					hostileReply(c, "200 OK", fmt.Sprintf("got %d bytes", n))
					return true
				})
				c := hostileDial(t, e)
				c.send(lane.head("POST", "/slow", "web.example.com", "Content-Length: 2000"))
				pieces := make([]string, 20)
				for i := range pieces {
					pieces[i] = strings.Repeat("x", 100)
				}
				<-sendPieces(c.c, pieces, 50*time.Millisecond) // 1s, more than the response header timeout
				checkLane(t, e, lane)
				resp, body, err := c.readWithin("POST", 3*time.Second)
				switch {
				case err != nil:
					t.Errorf("got no response (%v), want the upstream's 200", err)
				case resp.StatusCode != 200 || body != "got 2000 bytes":
					t.Errorf("got %d %q, want 200 %q: the response header timeout counted while the body was still coming",
						resp.StatusCode, body, "got 2000 bytes")
				}
			})
			t.Run("stalled upload", func(t *testing.T) {
				t.Parallel()
				e, up := hostileWeb(t, Config{ResponseHeaderTimeout: 200 * time.Millisecond}, func(c *hostileConn, req *http.Request) bool {
					if req.URL.Path != "/stall" {
						return c.echo(req)
					}
					n, err := io.Copy(io.Discard, req.Body)
					if err != nil {
						return false
					}
					hostileReply(c, "200 OK", fmt.Sprintf("got %d bytes", n))
					return true
				})
				pieces := smugglingPieces(t, 24*4096)
				length := 100 + 24*4096
				c := hostileDial(t, e)
				c.send(lane.head("POST", "/stall", "web.example.com", fmt.Sprintf("Content-Length: %d", length)) + strings.Repeat("a", 100))
				if up.waitRequest("/stall", 3*time.Second) == nil {
					t.Fatal("the upstream got no request within 3s")
				}
				checkLane(t, e, lane)
				time.Sleep(600 * time.Millisecond) // a stall longer than the response header timeout
				sent := sendPieces(c.c, pieces, 5*time.Millisecond)
				resp, body, err := c.readWithin("POST", 3*time.Second)
				switch {
				case err != nil:
					t.Errorf("got no response (%v), want the upstream's 200 or an error response", err)
				case resp.StatusCode == 200:
					if want := fmt.Sprintf("got %d bytes", length); body != want {
						t.Errorf("got 200 %q, want 200 %q", body, want)
					}
				case resp.StatusCode < 400:
					t.Errorf("got %d, want the upstream's 200 or an error response", resp.StatusCode)
				default:
					if !resp.Close {
						t.Errorf("got %d without Connection: close, want Connection: close (the body was not read)", resp.StatusCode)
					}
					c.expectEOF(t, 2*time.Second)
				}
				<-sent
				if got := smuggledRequests(up); len(got) > 0 {
					t.Errorf("the upstream got %d requests for /smuggled parsed from the body, want none", len(got))
				}
			})
		})
	}
}

// TestHostileResponsePoisoning: an upstream connection is reused only if
// nothing arrived on it since its response ended; bytes an upstream sends
// past a response's framed end reach no client.
//
// The upstream sends bytes that look like a response ~300ms after its
// response to client A ended: a body on a HEAD response, a body on a 204
// and on a 304, bytes after a complete 200. ~500ms after A's response,
// another client B asks for /b, twice on its connection, and must get
// exactly the upstream's answers (the upstream echoes the path).
//
// A 204 that carries Transfer-Encoding: chunked or Content-Length: 5
// cannot be framed exactly (its body may follow or not): its connection
// is not reused either; the next request goes on a new one.
func TestHostileResponsePoisoning(t *testing.T) {
	const poison = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON"
	late := []struct {
		name, method string
		answer       string // the upstream's response to A
		status       int
		body         string // what A gets
	}{
		{"body on HEAD", "HEAD", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(poison)), 200, ""},
		{"body on 204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", 204, ""},
		{"body on 304", "GET", "HTTP/1.1 304 Not Modified\r\n\r\n", 304, ""},
		{"bytes after a 200", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok"},
	}
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range late {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					lateSent := make(chan struct{})
					e, up := hostileWeb(t, Config{}, func(c *hostileConn, req *http.Request) bool {
						if req.URL.Path != "/a" {
							return c.echo(req)
						}
						io.WriteString(c, tc.answer)
						go func() {
							defer close(lateSent)
							time.Sleep(300 * time.Millisecond)
							io.WriteString(c, poison)
						}()
						return true
					})
					a := hostileDial(t, e)
					a.send(lane.head(tc.method, "/a", "web.example.com"))
					resp, body, err := a.readWithin(tc.method, 3*time.Second)
					if err != nil {
						t.Fatalf("client A: got no response (%v), want %d", err, tc.status)
					}
					if resp.StatusCode != tc.status || body != tc.body {
						t.Errorf("client A: got %d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
					}
					checkLane(t, e, lane)
					<-lateSent
					time.Sleep(200 * time.Millisecond)
					b := hostileDial(t, e)
					for _, path := range []string{"/b", "/b2"} {
						b.send(lane.head("GET", path, "web.example.com"))
						if _, ok := b.want(t, "client B, GET "+path, "GET", 200, "up "+path); !ok {
							break
						}
					}
					a.expectSilence(t, 100*time.Millisecond)
					if up.waitRequest("/b", time.Second) == nil {
						t.Errorf("the upstream never got GET /b (it got %v)", up.requests())
					}
				})
			}
			for _, tc := range []struct{ name, answer string }{
				{"204 with Content-Length", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"},
				{"204 chunked", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					e, up := hostileWeb(t, Config{}, func(c *hostileConn, req *http.Request) bool {
						if req.URL.Path != "/a" {
							return c.echo(req)
						}
						io.WriteString(c, tc.answer)
						return true
					})
					c := hostileDial(t, e)
					c.send(lane.head("GET", "/a", "web.example.com"))
					c.want(t, "GET /a", "GET", 204, "")
					checkLane(t, e, lane)
					c.send(lane.head("GET", "/b", "web.example.com"))
					c.want(t, "GET /b", "GET", 200, "up /b")
					ca, cb := up.waitRequest("/a", time.Second), up.waitRequest("/b", time.Second)
					if ca == nil || cb == nil {
						t.Fatalf("the upstream got %v, want GET /a and GET /b", up.requests())
					}
					if ca == cb {
						t.Errorf("got GET /b on the connection of the 204 (connection %d), want a new connection", ca.index)
					}
				})
			}
		})
	}
}

// TestHostileBodyTimeout: with Config{BodyTimeout: 200ms}, a request
// body that stops coming (10 of 1000 bytes, or one chunk of a chunked
// body) ends with 408 and Connection: close, then EOF, within a few
// seconds; the upstream connection used for it is closed by the router.
func TestHostileBodyTimeout(t *testing.T) {
	for _, tc := range []struct {
		lane hostileLane
		raw  string
	}{
		{hostileLanes[0], hostileLanes[0].head("POST", "/upload", "web.example.com", "Content-Length: 1000") + "0123456789"},
		{hostileLanes[1], hostileLanes[1].head("POST", "/upload", "web.example.com", "Transfer-Encoding: chunked") + "a\r\n0123456789\r\n"},
	} {
		t.Run(tc.lane.name, func(t *testing.T) {
			t.Parallel()
			e, up := hostileWeb(t, Config{BodyTimeout: 200 * time.Millisecond}, func(c *hostileConn, req *http.Request) bool {
				if _, err := io.Copy(io.Discard, req.Body); err != nil {
					return false
				}
				hostileReply(c, "200 OK", "the whole body came")
				return true
			})
			c := hostileDial(t, e)
			c.send(tc.raw)
			start := time.Now()
			if up.waitRequest("/upload", 3*time.Second) == nil {
				t.Fatalf("the upstream got no request (it got %q)", up.received())
			}
			checkLane(t, e, tc.lane)
			resp, _, err := c.readWithin("POST", 3*time.Second)
			switch {
			case err != nil:
				t.Errorf("got no response within 3s (%v), want 408", err)
			case resp.StatusCode != http.StatusRequestTimeout:
				t.Errorf("got %d, want 408", resp.StatusCode)
			case !resp.Close:
				t.Errorf("got 408 without Connection: close, want Connection: close")
			}
			if err == nil {
				c.expectEOF(t, time.Second)
			}
			for _, uc := range up.connections() {
				if !uc.closedByRouter(max(500*time.Millisecond, 3*time.Second-time.Since(start))) {
					t.Errorf("upstream connection %d (which got %v) still open, want it closed by the router", uc.index, uc.requests())
				}
			}
		})
	}
}

// TestHostileClientErrors: a request body the client got wrong is the
// client's error, not the upstream's. A malformed chunked body (a chunk
// size that is not hex, one that overflows, a chunk without its CRLF) is
// answered 400 and the connection closed after it; a body the client cut
// short (its write side closed) ends the connection, with a 400 or
// nothing (nginx logs it and closes; there is nobody left to answer).
// Five such requests in a row leave the upstream in rotation: it stays
// Available, no upstream failure is counted, and a GET afterwards is
// answered by it (MaxAttempts 1, a single instance).
func TestHostileClientErrors(t *testing.T) {
	lane, nethttp := hostileLanes[0], hostileLanes[1]
	chunked := nethttp.head("POST", "/upload", "web.example.com", "Transfer-Encoding: chunked")
	for _, tc := range []struct {
		lane       hostileLane
		name       string
		raw        string
		closeWrite bool // the client then closes its write side
	}{
		{nethttp, "chunk size not hex", chunked + "zz\r\n", false},
		{nethttp, "chunk size overflows", chunked + "fffffffffffffffffffff\r\n", false},
		{nethttp, "chunk without CRLF", chunked + "5\r\nhello0\r\n\r\n", false},
		{nethttp, "chunked body cut short", chunked + "64\r\n0123456789", true},
		{nethttp, "length body cut short", nethttp.head("POST", "/upload", "web.example.com", "Content-Length: 100") + "0123456789", true},
		{lane, "length body cut short", lane.head("POST", "/upload", "web.example.com", "Content-Length: 100") + "0123456789", true},
	} {
		t.Run(tc.lane.name+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			e, _ := hostileWeb(t, Config{MaxAttempts: 1}, nil)
			for i := range 5 {
				c := hostileDial(t, e)
				c.send(tc.raw)
				if tc.closeWrite {
					c.c.(*net.TCPConn).CloseWrite()
				}
				resp, _, err := c.readWithin("POST", 3*time.Second)
				switch {
				case err != nil && !tc.closeWrite:
					t.Errorf("request %d: got no response (%v), want 400", i, err)
				case err != nil:
					// The connection ended without a response: fine for a
					// client that went away.
				case resp.StatusCode != http.StatusBadRequest && tc.closeWrite:
					t.Errorf("request %d: got %d, want 400 or no response", i, resp.StatusCode)
				case resp.StatusCode != http.StatusBadRequest:
					t.Errorf("request %d: got %d, want 400", i, resp.StatusCode)
				}
				if err == nil {
					c.expectEOF(t, 2*time.Second)
				}
			}
			checkLane(t, e, tc.lane)
			u := e.r.table.Load().apps["web"].upstreams[0]
			if !u.Available() {
				t.Errorf("the upstream is out of rotation (%d failures) after client errors, want it available", u.fails.Load())
			}
			if n := counterValue(t, e.r.metrics.upstreamFailures.WithLabelValues("web")); n != 0 {
				t.Errorf("got %v upstream failures counted, want 0", n)
			}
			c := hostileDial(t, e)
			c.send(tc.lane.head("GET", "/after", "web.example.com"))
			c.want(t, "GET /after", "GET", 200, "up /after")
		})
	}
}

// TestHostileHeaderLimit: with the default Config, a request whose
// request line or one header is 1 MiB is refused with 431 (or 414), not
// proxied.
func TestHostileHeaderLimit(t *testing.T) {
	big := strings.Repeat("a", 1<<20)
	for _, lane := range hostileLanes {
		for _, tc := range []struct{ name, raw string }{
			{"1 MiB header", lane.head("GET", "/big", "web.example.com", "X-Big: "+big)},
			{"1 MiB request line", lane.head("GET", "/big"+big, "web.example.com")},
		} {
			t.Run(lane.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e, up := hostileWeb(t, Config{}, nil)
				c := hostileDial(t, e)
				sent := sendPieces(c.c, []string{tc.raw}, 0)
				resp, _, err := c.readWithin("GET", 3*time.Second)
				switch {
				case err != nil:
					t.Errorf("got no response (%v), want 431 or 414", err)
				case resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge && resp.StatusCode != http.StatusRequestURITooLong:
					t.Errorf("got %d, want 431 or 414", resp.StatusCode)
				}
				c.c.Close()
				<-sent
				if rx := up.received(); strings.Contains(rx, "/big") {
					t.Errorf("the upstream received the request (%d bytes), want it refused by the router", len(rx))
				}
			})
		}
	}
}

// TestHostileHardening: requests a reverse proxy should not pass on, and
// upstream connections it should not keep.
//
// CONNECT is answered 400 or 405 (nginx: 405) and never reaches the
// upstream. Request headers whose names contain "_" (X_Real_IP, Foo_Bar)
// are dropped, as nginx does by default, unless
// Config.AllowUnderscoreHeaders; the request and its other headers still
// reach the upstream. A kept-alive upstream connection unused for
// Config.UpstreamIdleTimeout is closed by the router.
func TestHostileHardening(t *testing.T) {
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			t.Run("CONNECT", func(t *testing.T) {
				e, up := hostileWeb(t, Config{}, nil)
				c := hostileDial(t, e)
				c.send(lane.head("CONNECT", "web.example.com:443", "web.example.com:443"))
				resp, _, err := c.readWithin("GET", 3*time.Second) // read as GET: a 200 would be framed by its length
				switch {
				case err != nil:
					t.Errorf("got no response (%v), want 400 or 405", err)
				case resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusMethodNotAllowed:
					t.Errorf("got %d, want 400 or 405", resp.StatusCode)
				}
				if rx := up.received(); strings.Contains(rx, "CONNECT") {
					t.Errorf("the upstream received %q, want no CONNECT", clip([]byte(rx)))
				}
			})
			for _, allow := range []bool{false, true} {
				t.Run(fmt.Sprintf("underscore headers allowed=%v", allow), func(t *testing.T) {
					e, up := hostileWeb(t, Config{AllowUnderscoreHeaders: allow}, nil)
					c := hostileDial(t, e)
					c.send(lane.head("GET", "/u", "web.example.com", "X_Real_IP: 1.2.3.4", "Foo_Bar: x", "X-Other: kept"))
					c.want(t, "GET /u", "GET", 200, "up /u")
					checkLane(t, e, lane)
					uc := up.waitRequest("/u", time.Second)
					if uc == nil {
						t.Fatalf("the upstream got %v, want GET /u", up.requests())
					}
					h := uc.requests()[0].Header
					if got := h.Get("X-Other"); got != "kept" {
						t.Errorf("X-Other: got %q, want %q", got, "kept")
					}
					if got := h.Get("X-Real-Ip"); got != "127.0.0.1" {
						t.Errorf("X-Real-IP: got %q, want the router's 127.0.0.1", got)
					}
					for name, want := range map[string]string{"X_Real_IP": "1.2.3.4", "Foo_Bar": "x"} {
						got := headerFold(h, name)
						switch {
						case allow && got != want:
							t.Errorf("%s: got %q, want %q passed on with AllowUnderscoreHeaders", name, got, want)
						case !allow && got != "":
							t.Errorf("%s: got %q passed on, want it dropped", name, got)
						}
					}
				})
			}
			t.Run("upstream idle timeout", func(t *testing.T) {
				e, up := hostileWeb(t, Config{UpstreamIdleTimeout: 200 * time.Millisecond}, nil)
				c := hostileDial(t, e)
				c.send(lane.head("GET", "/idle", "web.example.com"))
				c.want(t, "GET /idle", "GET", 200, "up /idle")
				checkLane(t, e, lane)
				uc := up.waitRequest("/idle", time.Second)
				if uc == nil {
					t.Fatalf("the upstream got %v, want GET /idle", up.requests())
				}
				if !uc.closedByRouter(2 * time.Second) {
					t.Errorf("the upstream connection is still open 2s after its request, want it closed after 200ms idle")
				}
			})
		})
	}
}

// headerFold is h's value for name compared without case (net/http
// canonicalizes "X_Real_IP" to "X_real_ip").
func headerFold(h http.Header, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return strings.Join(v, ", ")
		}
	}
	return ""
}

// TestHostileClientNeverReads: a client that takes no response bytes for
// the body timeout is disconnected (nginx's send_timeout), and the
// upstream connection that fed it is closed; neither is held for ever.
// The upstream streams a 256 MiB body; the client never reads.
func TestHostileClientNeverReads(t *testing.T) {
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			cut := make(chan struct{}) // the upstream's write failed: the router closed the connection
			e, up := hostileWeb(t, Config{BodyTimeout: 300 * time.Millisecond}, func(c *hostileConn, req *http.Request) bool {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 268435456\r\n\r\n")
				chunk := strings.Repeat("z", 64<<10)
				for range 4096 {
					if _, err := io.WriteString(c, chunk); err != nil {
						close(cut)
						return false
					}
				}
				return true
			})
			c := hostileDial(t, e)
			c.send(lane.head("GET", "/big", "web.example.com"))
			if up.waitRequest("/big", 3*time.Second) == nil {
				t.Fatal("the upstream got no request")
			}
			checkLane(t, e, lane)
			select {
			case <-cut:
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream connection is still open 10s after the client stopped reading, want it closed")
			}
			// The client's connection ends too: what it can still read is
			// what was in flight, then EOF or a reset.
			c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, c.c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the client connection did not end: %v", err)
			}
		})
	}
}

// TestHostileUpstreamLeavesPool: when an upstream leaves the routing
// table, the router closes its kept-alive connections to it at once,
// not after the idle timeout.
func TestHostileUpstreamLeavesPool(t *testing.T) {
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			e, up := hostileWeb(t, Config{UpstreamIdleTimeout: time.Hour}, nil)
			c := hostileDial(t, e)
			c.send(lane.head("GET", "/a", "web.example.com"))
			c.want(t, "GET /a", "GET", 200, "up /a")
			conn := up.waitRequest("/a", 3*time.Second)
			if conn == nil {
				t.Fatal("the upstream got no request")
			}
			k, _ := e.keys.Instance("web", "1")
			resp, err := e.cli.Delete(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			e.waitRev(resp.Header.Revision)
			if !conn.closedByRouter(3 * time.Second) {
				t.Fatal("the connection to an upstream that left the table is still open 3s later")
			}
		})
	}
}

// TestHostileInformational: 1xx responses reach clients without
// hop-by-hop headers, and an upstream that sends 1xx responses without
// end gets a 502 rather than a client fed for ever.
func TestHostileInformational(t *testing.T) {
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			e, _ := hostileWeb(t, Config{MaxAttempts: 1}, func(c *hostileConn, req *http.Request) bool {
				n := 1
				if req.URL.Path == "/endless" {
					n = 20
				}
				for range n {
					io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nConnection: x-secret\r\nX-Secret: 1\r\nLink: </a.css>\r\n\r\n")
				}
				hostileReply(c, "200 OK", "ok")
				return true
			})
			c := hostileDial(t, e)
			c.send(lane.head("GET", "/hints", "web.example.com"))
			c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			hints, err := textproto.NewReader(c.br).ReadLine()
			if err != nil || !strings.HasPrefix(hints, "HTTP/1.1 103") {
				t.Fatalf("first line %q (%v), want the 103", hints, err)
			}
			hdr, err := textproto.NewReader(c.br).ReadMIMEHeader()
			if err != nil || hdr.Get("Link") == "" || hdr.Get("Connection") != "" || hdr.Get("X-Secret") != "" {
				t.Fatalf("103 headers %v (%v): want Link, and no Connection nor the header it names", hdr, err)
			}
			c.want(t, "GET /hints", "GET", 200, "ok")
			checkLane(t, e, lane)
			c2 := hostileDial(t, e)
			c2.send(lane.head("GET", "/endless", "web.example.com"))
			if resp, _, err := c2.readWithin("GET", 5*time.Second); err != nil || resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("20 1xx responses: got %v (%v), want 502", resp, err)
			}
		})
	}
}
