package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// client is a raw keep-alive connection to the router.
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func (e *env) dial() *client {
	e.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: e.t, c: c, br: bufio.NewReader(c)}
}

func (c *client) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, raw); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one final response (method is the request's) and its body,
// skipping 1xx responses.
func (c *client) read(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	for err == nil && resp.StatusCode < 200 {
		resp, err = http.ReadResponse(c.br, &http.Request{Method: method})
	}
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("body: %v", err)
	}
	return resp, string(b)
}

func (c *client) get(host, path string) (*http.Response, string) {
	c.t.Helper()
	c.send("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n")
	return c.read("GET")
}

// TestLaneServesPlainRequestsAndHandsOverTheRest: a plain GET is proxied
// on the fast lane; a request the lane does not take (an unknown host's
// 404 page) moves the connection to net/http with nothing lost, and the
// connection keeps working there.
func TestLaneServesPlainRequestsAndHandsOverTheRest(t *testing.T) {
	e := newEnv(t, Config{})
	s, _ := backend(t, "b")
	e.instance("web", "1", addr(s))
	c := e.dial()
	if resp, body := c.get("web.example.com", "/one"); resp.StatusCode != 200 || !strings.HasPrefix(body, "b /one") {
		t.Fatalf("lane: %d %q", resp.StatusCode, body)
	}
	if lane, h := counterValue(t, e.r.metrics.laneRequests), counterValue(t, e.r.metrics.handoffs); lane != 1 || h != 0 {
		t.Fatalf("after a plain GET: %v lane requests, %v handoffs", lane, h)
	}
	if resp, _ := c.get("nobody.example.org", "/"); resp.StatusCode != 404 || resp.Header.Get("X-Berth-Page") != "404" {
		t.Fatalf("unknown host on the same connection: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, body := c.get("web.example.com", "/three"); resp.StatusCode != 200 || !strings.HasPrefix(body, "b /three") {
		t.Fatalf("after the handoff: %d %q", resp.StatusCode, body)
	}
	if lane, h := counterValue(t, e.r.metrics.laneRequests), counterValue(t, e.r.metrics.handoffs); lane != 1 || h != 1 {
		t.Fatalf("after the handoff: %v lane requests, %v handoffs", lane, h)
	}
}

// TestLanePipelining: requests sent back to back in one write are
// answered in order.
func TestLanePipelining(t *testing.T) {
	e := newEnv(t, Config{})
	s, _ := backend(t, "b")
	e.instance("web", "1", addr(s))
	c := e.dial()
	var raw strings.Builder
	for _, p := range []string{"/a", "/b", "/c"} {
		raw.WriteString("GET " + p + " HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	}
	raw.WriteString("POST /d HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 4\r\n\r\nbody")
	c.send(raw.String())
	for _, p := range []string{"/a", "/b", "/c", "/d"} {
		if resp, body := c.read("GET"); resp.StatusCode != 200 || !strings.HasPrefix(body, "b "+p+" ") {
			t.Fatalf("pipelined %s: %d %q", p, resp.StatusCode, body)
		}
	}
}

// rawBackend answers every request with the bytes reply returns, then
// closes the connection if reply says so.
func rawBackend(t testing.TB, reply func(head string) (resp string, closeConn bool)) string {
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
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					resp, closeConn := reply(req.Method + " " + req.URL.Path)
					io.WriteString(c, resp)
					if closeConn {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// TestLaneResponseFraming: bodies framed by length, by chunks (with
// trailers, passed through), by the upstream closing (chunked to the
// client, whose connection stays open), and responses without a body.
func TestLaneResponseFraming(t *testing.T) {
	e := newEnv(t, Config{})
	up := rawBackend(t, func(head string) (string, bool) {
		switch head {
		case "GET /length":
			return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\n\r\nhello", false
		case "GET /chunked":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n", false
		case "GET /close":
			return "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", true
		case "HEAD /length":
			return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false
		case "GET /nocontent":
			return "HTTP/1.1 204 No Content\r\n\r\n", false
		case "GET /hop":
			return "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: leak\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok", false
		}
		return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false
	})
	e.instance("web", "1", up)
	c := e.dial()
	check := func(method, path string, status int, body string) *http.Response {
		t.Helper()
		c.send(method + " " + path + " HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
		resp, got := c.read(method)
		if resp.StatusCode != status || got != body {
			t.Fatalf("%s %s: %d %q, want %d %q", method, path, resp.StatusCode, got, status, body)
		}
		return resp
	}
	if resp := check("GET", "/length", 200, "hello"); resp.Header.Get("Keep-Alive") != "" || resp.ContentLength != 5 {
		t.Fatalf("length-framed: hop-by-hop header kept or length lost: %v", resp.Header)
	}
	if resp := check("GET", "/chunked", 200, "hello world"); resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("chunked: trailer %v", resp.Trailer)
	}
	if resp := check("GET", "/close", 200, "until the end"); len(resp.TransferEncoding) == 0 || resp.Close {
		t.Fatalf("close-delimited: want chunked on a kept-alive connection, got %v close=%v", resp.TransferEncoding, resp.Close)
	}
	check("HEAD", "/length", 200, "")
	check("GET", "/nocontent", 204, "")
	if resp := check("GET", "/hop", 200, "ok"); resp.Header.Get("X-Secret") != "" || resp.Header.Get("X-Kept") != "yes" {
		t.Fatalf("a header named by Connection was passed on: %v", resp.Header)
	}
	check("GET", "/length", 200, "hello") // still the same connection
	if h := counterValue(t, e.r.metrics.handoffs); h != 0 {
		t.Fatalf("%v handoffs", h)
	}
}

// TestLaneEarlyHints: a 103 reaches the client before the response.
func TestLaneEarlyHints(t *testing.T) {
	e := newEnv(t, Config{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "page")
	}))
	defer s.Close()
	e.instance("web", "1", addr(s))
	var hints []textproto.MIMEHeader
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if code == http.StatusEarlyHints {
			hints = append(hints, h)
		}
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", e.srv.URL+"/", nil)
	req.Host = "web.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "page" || len(hints) != 1 || hints[0].Get("Link") == "" {
		t.Fatalf("body %q, hints %v", body, hints)
	}
}

// TestLaneLargeBodies: a 4 MiB upload and a 4 MiB download arrive intact.
func TestLaneLargeBodies(t *testing.T) {
	e := newEnv(t, Config{})
	big := bytes.Repeat([]byte("0123456789abcdef"), 256<<10)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%x", sha256.Sum256(b))
			return
		}
		w.Write(big)
	}))
	defer s.Close()
	e.instance("web", "1", addr(s))
	c := e.dial()
	c.send(fmt.Sprintf("POST / HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: %d\r\n\r\n", len(big)))
	go c.c.Write(big)
	if resp, body := c.read("POST"); resp.StatusCode != 200 || body != fmt.Sprintf("%x", sha256.Sum256(big)) {
		t.Fatalf("upload: %d %q", resp.StatusCode, body)
	}
	if resp, body := c.get("web.example.com", "/"); resp.StatusCode != 200 || body != string(big) {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(body))
	}
	if h := counterValue(t, e.r.metrics.handoffs); h != 0 {
		t.Fatalf("%v handoffs", h)
	}
}

// TestLaneHandsOverUnusualRequests: requests outside the lane's subset
// reach net/http, which serves the valid ones and refuses the ambiguous
// ones; the upstream never sees a request the lane misread.
func TestLaneHandsOverUnusualRequests(t *testing.T) {
	e := newEnv(t, Config{})
	var seen sync.Map // paths the upstream was asked for
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.URL.Path, true)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %q", r.Method, r.URL.Path, b)
	}))
	defer s.Close()
	e.instance("web", "1", addr(s))
	for _, tc := range []struct {
		name, raw string
		status    int
		body      string
	}{
		{"chunked upload", "POST /u HTTP/1.1\r\nHost: web.example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200, `POST /u "abc"`},
		{"HTTP/1.0", "GET /old HTTP/1.0\r\nHost: web.example.com\r\n\r\n", 200, `GET /old ""`},
		{"expect", "PUT /e HTTP/1.1\r\nHost: web.example.com\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi", 200, `PUT /e "hi"`},
		{"two lengths", "POST /x HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, ""},
		// Transfer-Encoding wins (RFC 9112 6.3); what follows is the next request.
		{"length and chunked", "POST /y HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: web.example.com\r\n\r\n", 200, `POST /y ""`},
		{"space before colon", "GET /z HTTP/1.1\r\nHost : web.example.com\r\n\r\n", 400, ""},
		{"two hosts", "GET /h HTTP/1.1\r\nHost: web.example.com\r\nHost: evil.example.com\r\n\r\n", 400, ""},
		{"no host", "GET /n HTTP/1.1\r\n\r\n", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial()
			c.send(tc.raw)
			resp, body := c.read("GET")
			if resp.StatusCode != tc.status || tc.body != "" && body != tc.body {
				t.Fatalf("%d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
			path := strings.Fields(tc.raw)[1]
			if _, ok := seen.Load(path); tc.status == 400 && ok {
				t.Fatalf("the upstream saw the refused request for %s", path)
			}
		})
	}
}

// TestLaneUpstreamErrors: a malformed response is a 502 page, a silent
// upstream a 504 after the response header timeout; the client's
// connection stays usable.
func TestLaneUpstreamErrors(t *testing.T) {
	e := newEnv(t, Config{ResponseHeaderTimeout: 300 * time.Millisecond, MaxAttempts: 1})
	garbage := rawBackend(t, func(string) (string, bool) { return "HTTP/1.1 2OO OK\r\n\r\n", true })
	silent := rawBackend(t, func(string) (string, bool) { time.Sleep(2 * time.Second); return "", true })
	ok, _ := backend(t, "ok")
	e.instance("bad", "1", garbage)
	e.instance("slow", "1", silent)
	e.instance("web", "1", addr(ok))
	c := e.dial()
	if resp, _ := c.get("bad.example.com", "/"); resp.StatusCode != 502 || resp.Header.Get("X-Berth-Page") != "502" {
		t.Fatalf("malformed response: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := c.get("slow.example.com", "/"); resp.StatusCode != 504 {
		t.Fatalf("silent upstream: %d", resp.StatusCode)
	}
	if resp, body := c.get("web.example.com", "/"); resp.StatusCode != 200 || !strings.HasPrefix(body, "ok ") {
		t.Fatalf("after the errors: %d %q", resp.StatusCode, body)
	}
}

// TestLaneClientClose: "Connection: close" is honoured.
func TestLaneClientClose(t *testing.T) {
	e := newEnv(t, Config{})
	s, _ := backend(t, "b")
	e.instance("web", "1", addr(s))
	c := e.dial()
	c.send("GET / HTTP/1.1\r\nHost: web.example.com\r\nConnection: close\r\n\r\n")
	resp, _ := c.read("GET")
	if !resp.Close {
		t.Fatal("response does not say Connection: close")
	}
	if _, err := c.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("connection not closed: %v", err)
	}
}

// TestServerShutdown: idle connections close at once, a request in flight
// finishes (and says Connection: close), then Shutdown returns and Serve
// reports http.ErrServerClosed.
func TestServerShutdown(t *testing.T) {
	e := newEnv(t, Config{})
	release := make(chan struct{})
	arrived := make(chan struct{}) // /slow reached the backend: it is in flight
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		io.WriteString(w, "done")
	}))
	defer s.Close()
	e.instance("web", "1", addr(s))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(e.r, nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	dial := func() *client {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &client{t: t, c: c, br: bufio.NewReader(c)}
	}
	idle, busy := dial(), dial()
	idle.get("web.example.com", "/")
	busy.send("GET /slow HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	// Not the app's in-flight count: the previous request's may not be
	// decremented yet (the lane does that after writing the response).
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("/slow did not reach the backend")
	}
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	idle.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection not closed: %v", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned with a request in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if resp, body := busy.read("GET"); body != "done" || !resp.Close {
		t.Fatalf("in-flight request: %q close=%v", body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// TestPostNotSentTwice: an upstream that reads a POST on a kept-alive
// connection and closes it without answering may have acted on it; the
// router answers 502 rather than sending it again, on either lane.
func TestPostNotSentTwice(t *testing.T) {
	e := newEnv(t, Config{})
	var posts atomic.Int64
	up := rawBackend(t, func(head string) (string, bool) {
		if head == "POST /charge" {
			posts.Add(1)
			return "", true // acted on it, then crashed
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	e.instance("web", "1", up)
	for _, lane := range []string{"fast lane", "net/http"} {
		posts.Store(0)
		c := e.dial()
		if lane == "net/http" {
			c.get("nobody.example.org", "/") // a 404 page moves the connection to net/http
		}
		c.get("web.example.com", "/warm") // leaves a kept-alive upstream connection
		c.send("POST /charge HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 0\r\n\r\n")
		resp, _ := c.read("POST")
		if resp.StatusCode != 502 || posts.Load() != 1 {
			t.Fatalf("%s: status %d, the upstream got the POST %d times", lane, resp.StatusCode, posts.Load())
		}
	}
}

// TestLaneTimeouts: a client that stops in the middle of a request head,
// and one that stays idle, are disconnected (ReadHeaderTimeout,
// IdleTimeout); neither holds a connection forever.
func TestLaneTimeouts(t *testing.T) {
	s, _ := backend(t, "b")
	short, long := 200*time.Millisecond, time.Minute
	for _, tc := range []struct {
		name, first      string
		readHeader, idle time.Duration
	}{
		{"slow head", "GET / HTTP/1.1\r\nHost: web.exa", short, long},
		{"idle after a request", "GET / HTTP/1.1\r\nHost: web.example.com\r\n\r\n", long, short},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{ReadHeaderTimeout: tc.readHeader, IdleTimeout: tc.idle})
			e.instance("web", "1", addr(s))
			c := e.dial()
			io.WriteString(c.c, tc.first)
			c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, c.c); err != nil { // returns at EOF: the router closed it
				t.Fatalf("connection not closed by the router: %v", err)
			}
		})
	}
}

// TestLaneHonoursMaxHeaderBytes: a limit below the lane's buffer still
// applies; the request goes to net/http, which answers 431 (it allows the
// limit plus 4 KiB for the request line).
func TestLaneHonoursMaxHeaderBytes(t *testing.T) {
	e := newEnv(t, Config{MaxHeaderBytes: 1024})
	s, _ := backend(t, "b")
	e.instance("web", "1", addr(s))
	c := e.dial()
	c.send("GET / HTTP/1.1\r\nHost: web.example.com\r\nX-Big: " + strings.Repeat("x", 6000) + "\r\n\r\n")
	if resp, _ := c.read("GET"); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 6 KB head past a 1 KB limit: %d", resp.StatusCode)
	}
}

// TestAccessLogBothLanes: with the access log on, a request on the fast
// lane and one after a handoff to net/http log the same fields.
func TestAccessLogBothLanes(t *testing.T) {
	e := newEnv(t, Config{})
	s, _ := backend(t, "b")
	e.instance("web", "1", addr(s))
	logger, hook := logtest.NewNullLogger()
	r, err := New(Config{AccessLog: true}, e.cache, logger)
	if err != nil {
		t.Fatal(err)
	}
	go r.Run(t.Context())
	for !r.Ready() {
		time.Sleep(5 * time.Millisecond)
	}
	f := serveFront(t, r)
	defer f.Close()
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, c: conn, br: bufio.NewReader(conn)}
	c.get("web.example.com", "/fast%20lane?q=1")
	c.get("nobody.example.org", "/") // hands the connection to net/http
	c.get("web.example.com", "/net%20http?q=2")
	var got []string
	for _, en := range hook.AllEntries() {
		if en.Message != "request" {
			continue
		}
		if en.Level != logrus.InfoLevel || en.Data["upstream"] != addr(s) || en.Data["attempts"] != 1 {
			t.Errorf("entry %v at %s", en.Data, en.Level)
		}
		got = append(got, fmt.Sprint(en.Data["method"], " ", en.Data["host"], en.Data["path"], " ", en.Data["status"], " ", en.Data["app"]))
	}
	want := []string{"GET web.example.com/fast lane 200 web", "GET web.example.com/net http 200 web"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("access log %q, want %q", got, want)
	}
}
