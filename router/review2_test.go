package router

// Second hostile review: the fixes of the first (write timeouts towards
// clients, statusRecorder on every net/http answer, clientBody's up-front
// deadline, the pool's deadline caching and sweep) attacked on both lanes
// and over HTTP/2. Each test states its rule; they reuse hostile_test.go's
// raw clients and upstreams and review_test.go's helpers.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"
)

// review2H2C is an HTTP/2 client without TLS (prior knowledge), as gRPC
// clients are.
func review2H2C() *http.Client {
	return &http.Client{Transport: &http.Transport{Protocols: h2cOnly()}}
}

// TestReview2QuietChunkedEnd: the write timeout towards a client bounds a
// write the client does not take ("a client that takes no response bytes
// for --body-timeout is disconnected"), not the upstream's silence. An
// upstream that sends a chunked response's data at once and its last
// chunk (0 CRLF CRLF) 3× the body timeout later (a long poll, a stream
// that ends after a quiet period) must reach an attentive client whole,
// on a connection kept alive for the next request.
//
// The net/http lane fails: statusRecorder.bound arms the connection's
// write deadline before each Write only, and the last chunk is written by
// net/http after the handler returns (finishRequest), when the deadline
// of the last Write has passed: the client gets the data, then the
// connection ends without the last chunk (unexpected EOF).
func TestReview2QuietChunkedEnd(t *testing.T) {
	const bt = 200 * time.Millisecond
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			e, _ := hostileWeb(t, Config{BodyTimeout: bt}, func(c *hostileConn, req *http.Request) bool {
				if req.URL.Path != "/poll" {
					return c.echo(req)
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
				time.Sleep(3 * bt)
				io.WriteString(c, "0\r\n\r\n")
				return true
			})
			c := hostileDial(t, e)
			c.send(lane.head("GET", "/poll", "web.example.com"))
			resp, body, err := c.readWithin("GET", 5*time.Second)
			checkLane(t, e, lane)
			if err != nil {
				t.Fatalf("got %q and then %v; want the whole response (its last chunk came %v after its data, and the client read all the while)", body, err, 3*bt)
			}
			if resp.StatusCode != 200 || body != "hello" {
				t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, "hello")
			}
			c.send(lane.head("GET", "/next", "web.example.com"))
			c.want(t, "GET /next on the same connection", "GET", 200, "up /next")
		})
	}
}

// TestReview2QuietStreamOverHTTP2: a quiet response stream is not cut
// over HTTP/2 either: an SSE stream (or a gRPC server stream) whose
// upstream sends an event, is silent for 3× the body timeout, then sends
// another and ends, reaches an HTTP/2 client whole.
//
// It fails: statusRecorder.bound calls ResponseController.SetWriteDeadline
// before each write, and on an HTTP/2 stream a write deadline is not a
// bound on a blocked write but a timer that resets the stream when it
// fires, writing or not (http2responseWriter.SetWriteDeadline,
// onWriteTimeout: RST_STREAM INTERNAL_ERROR). Every HTTP/2 response that
// is silent for --body-timeout after its last write is reset.
func TestReview2QuietStreamOverHTTP2(t *testing.T) {
	const bt = 200 * time.Millisecond
	e, _ := hostileWeb(t, Config{BodyTimeout: bt}, func(c *hostileConn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
		time.Sleep(3 * bt)
		io.WriteString(c, "9\r\ndata: 2\n\n\r\n0\r\n\r\n")
		return true
	})
	req, _ := http.NewRequest("GET", e.srv.URL+"/events", nil)
	req.Host = "web.example.com"
	resp, err := review2H2C().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("got HTTP/%d, want HTTP/2", resp.ProtoMajor)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "data: 1\n\ndata: 2\n\n" {
		t.Fatalf("got %q (%v), want both events: the stream was cut while it was quiet for %v", b, err, 3*bt)
	}
}

// TestReview2ClientErrorKeepsHTTP2Connection: a client's failure on one
// HTTP/2 stream (a body stalled past the body timeout: 408) ends that
// stream, not the connection its other and later streams share. Over
// HTTP/1 the 408 says "Connection: close" (the rest of the body is on the
// connection); over HTTP/2 there is nothing to resynchronise.
//
// It fails: Router.proxyError sets "Connection: close" on every client
// error, whatever the protocol, and net/http's HTTP/2 server takes that
// header as an order to shut the whole connection down (GOAWAY,
// startGracefulShutdown): one client's stalled upload through a shared
// connection (a CDN, a load balancer, a browser's tabs) tears it down
// for every request multiplexed on it.
func TestReview2ClientErrorKeepsHTTP2Connection(t *testing.T) {
	const bt = 200 * time.Millisecond
	e, _ := hostileWeb(t, Config{BodyTimeout: bt}, nil)
	cl := review2H2C()
	reused := func() (r bool) {
		req, _ := http.NewRequest("GET", e.srv.URL+"/get", nil)
		req.Host = "web.example.com"
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { r = i.Reused }}))
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Fatalf("GET: got HTTP/%d %d, want HTTP/2 200", resp.ProtoMajor, resp.StatusCode)
		}
		return r
	}
	reused() // opens the connection
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("start of a body that stalls"))
	req, _ := http.NewRequest("POST", e.srv.URL+"/upload", pr)
	req.Host = "web.example.com"
	req.ContentLength = 1000
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled upload: got %d, want 408", resp.StatusCode)
	}
	pw.Close()
	time.Sleep(100 * time.Millisecond) // a GOAWAY, if any, has arrived
	if !reused() {
		t.Fatal("the request after another stream's 408 needed a new connection: the router shut the HTTP/2 connection down (GOAWAY) for one stream's client error")
	}
}

// review2SmallSendBuffers is a listener whose connections have a 16 KiB
// send buffer (SO_SNDBUF 8192, which Linux doubles): what an operator's
// net.ipv4.tcp_wmem, or memory pressure, leaves a socket.
type review2SmallSendBuffers struct{ net.Listener }

func (l review2SmallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(8192)
	}
	return c, err
}

// review2SmallBufferFront serves e's router on a second listener whose
// connections have small send buffers; it returns the listener's
// address.
func review2SmallBufferFront(t *testing.T, e *env) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(e.r, nil)
	go s.Serve(review2SmallSendBuffers{l})
	t.Cleanup(func() { s.Close() })
	return l.Addr().String()
}

// review2SlowDial connects a raw client to addr with a small receive
// buffer (set before connecting, so that the TCP window is small too):
// the router's writes wait on what the client takes.
func review2SlowDial(t *testing.T, addr string) *client {
	t.Helper()
	d := net.Dialer{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReaderSize(c, 1024)}
}

// TestReview2SlowSteadyReader: the write timeout towards a client is
// nginx's send_timeout, "set only between two successive write
// operations, not for the transmission of the whole response"
// (docs/router.md: "a client that takes no response bytes for
// --body-timeout is disconnected"). A client that reads a 192 KiB
// response 2 KiB every 50ms (40 KiB/s, never pausing for more than a
// sixth of the 300ms body timeout) must get it whole. The router's
// sockets have 16 KiB send buffers here (review2SmallSendBuffers); with
// Linux's autotuned ones the same happens with larger buffers, longer
// timeouts and slower clients.
//
// Both lanes fail. The lane's rawIO.write arms the write deadline at the
// first EAGAIN of a Write call and does not move it as the socket drains
// (rawio_linux.go write/Write), so one Write of 8 to 16 KiB (copyN hands
// bufio whole upstream buffers) must complete within the timeout; the
// net/http lane's statusRecorder.bound moves the deadline before each
// Write of ReverseProxy's 32 KiB buffer only. Either way the deadline
// bounds a whole buffer, not progress: a client slower than buffer size
// over body timeout (here 16 KiB / 300ms, 53 KiB/s) is cut off mid-body
// however steadily it reads.
func TestReview2SlowSteadyReader(t *testing.T) {
	// 20 times the reader's pace: a busy test machine may delay a read by
	// a few hundred milliseconds, which is not what this test is about.
	const bt = time.Second
	const size = 192 << 10
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			e, _ := hostileWeb(t, Config{BodyTimeout: bt}, func(c *hostileConn, req *http.Request) bool {
				io.WriteString(c, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size))
				io.WriteString(c, strings.Repeat("s", size))
				return true
			})
			c := review2SlowDial(t, review2SmallBufferFront(t, e))
			c.send(lane.head("GET", "/big", "web.example.com"))
			c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
			if err != nil {
				t.Fatal(err)
			}
			checkLane(t, e, lane)
			start := time.Now()
			buf := make([]byte, 2048)
			got := 0
			var rerr error
			for got < size {
				time.Sleep(50 * time.Millisecond)
				n, err := io.ReadFull(resp.Body, buf[:min(len(buf), size-got)])
				got += n
				if err != nil {
					rerr = err
					break
				}
			}
			if got != size {
				t.Fatalf("got %d of %d bytes after %v (%v): a client that read 2 KiB every 50ms was cut off", got, size, time.Since(start).Round(time.Millisecond), rerr)
			}
		})
	}
}

// TestReview2WakeHeldUploadOverHTTP2: the body timeout counts the
// client's silence, not the router's ("a request body without progress
// for this long"). A 4 MiB upload to a sleeping app is held by the waker
// until the app is up (1s here, the body timeout 300ms); the client
// blocks on flow control meanwhile, because the router does not read. It
// must reach the woken app whole, over HTTP/1.1 and HTTP/2 alike.
//
// HTTP/2 fails with 408: newClientBody arms the read deadline up front
// (ResponseController.SetReadDeadline) and, on an HTTP/2 stream, a read
// deadline is a timer that fails the body when it fires, read or not
// (http2stream.onReadTimeout closes the body's pipe with
// os.ErrDeadlineExceeded). The waker serves the request again through
// ServeHTTP, which keeps the clientBody (and its expired timer) as it is.
// Over HTTP/1.1 an expired deadline is only checked by the next read,
// which moves it first.
func TestReview2WakeHeldUploadOverHTTP2(t *testing.T) {
	for _, tc := range []struct {
		name string
		cl   *http.Client
	}{{"http1", &http.Client{Transport: &http.Transport{}}}, {"h2c", review2H2C()}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Config{BodyTimeout: 300 * time.Millisecond})
			log, _ := test.NewNullLogger()
			NewWaker(e.r, e.cli, e.keys, log)
			b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, err := io.Copy(io.Discard, r.Body)
				fmt.Fprintf(w, "woken got %d bytes (%v)", n, err)
			}))
			t.Cleanup(b.Close)
			sleepingApp(t, e, "sleepy")
			starter(t, e, "sleepy", addr(b), time.Second)
			const size = 4 << 20
			req, _ := http.NewRequest("POST", e.srv.URL+"/upload", strings.NewReader(strings.Repeat("u", size)))
			req.Host = "sleepy.example.com"
			resp, err := tc.cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := fmt.Sprintf("woken got %d bytes (<nil>)", size)
			if resp.StatusCode != 200 || string(body) != want {
				t.Fatalf("HTTP/%d: got %d %q, want 200 %q", resp.ProtoMajor, resp.StatusCode, body, want)
			}
		})
	}
}
